# opsroom's PowerShell bootstrap:  pwsh -NoLogo -NoProfile -NonInteractive -File bootstrap.ps1 <file>
#
# <file> is one of (SPEC §3.10):
#   - a script with its own param(): run as it is;
#   - a function file ($env:OPSROOM_PS_FUNCTION names the function, <file> is a .ps1): dot-sourced
#     once, in a scope of its own, then that function is called once;
#   - a module ($env:OPSROOM_PS_FUNCTION names the function, <file> is its .psd1 or .psm1):
#     imported by path from the catalog, then its exported function is called.
#
# Parameters never travel on the command line. They come as JSON in $env:OPSROOM_PARAMS, with
# their types in $env:OPSROOM_PARAM_TYPES ({"Hosts": "string[]", "When": "datetime"}), and are
# splatted onto the command. Only parameters the command itself declares are ever bound; a common
# parameter (-ErrorAction, -WhatIf, -Confirm, ...) or an unknown name is refused before the
# command starts. -WhatIf is added only when OPSROOM_DRY_RUN is 1 and the command supports
# ShouldProcess.
#
# Before anything of the file runs, its #Requires ($env:OPSROOM_PS_REQUIRES: modules, version,
# editions, admin) are checked: the first unmet one stops the job, named.
# [pscredential]/[securestring] parameters are built from secrets: $env:OPSROOM_PS_CREDENTIALS
# maps each to a secret's name ({"Credential": {"secret": "AD_SVC", "type": "pscredential"}}),
# whose value is in the environment as `user:password` or JSON {"username": ..., "password": ...}.
# A [securestring] takes the JSON's password, else the whole value. No message prints a value.
#
# Output: strings are printed as they are; other pipeline objects become table rows on the event
# channel (the fd in $env:OPSROOM_EVENTS_FD), as does Write-Progress. Scripts may also call
# Write-OpsroomProgress, Write-OpsroomStatus, Write-OpsroomTable and Send-OpsroomFile (attach a
# file of the job's working folder:  Send-OpsroomFile report.csv -Name 'May.csv' -ContentType text/csv).
#
# Exit status: 1 when the command throws, else its $LASTEXITCODE (`exit 3` gives 3);
# 2 when the bootstrap cannot start the command at all.

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Stop-OpsroomBootstrap([string]$Message) {
    [Console]::Error.WriteLine("opsroom: $Message")
    exit 2
}

if ($args.Count -ne 1) { Stop-OpsroomBootstrap 'usage: bootstrap.ps1 <script.ps1|module.psd1|module.psm1>' }
$OpsroomScriptPath = [string]$args[0]

# --- event channel --------------------------------------------------------------------------

$global:OpsroomEventWriter = $null
if ($env:OPSROOM_EVENTS_FD) {
    try {
        $handle = [Microsoft.Win32.SafeHandles.SafeFileHandle]::new([IntPtr][int]$env:OPSROOM_EVENTS_FD, $false)
        $stream = [System.IO.FileStream]::new($handle, [System.IO.FileAccess]::Write, 1)
        $global:OpsroomEventWriter = [System.IO.StreamWriter]::new($stream, [System.Text.UTF8Encoding]::new($false))
        $global:OpsroomEventWriter.AutoFlush = $true
    } catch {
        $global:OpsroomEventWriter = $null
    }
}

function global:Write-OpsroomEventLine([string]$Line) {
    if ($null -eq $global:OpsroomEventWriter) { return $false }
    $global:OpsroomEventWriter.WriteLine($Line)
    return $true
}

function global:Write-OpsroomProgress {
    param([Parameter(Position = 0)]$Percent, [Parameter(Position = 1)][string]$Message = '')
    $pct = $null
    if ($null -ne $Percent -and [double]$Percent -ge 0) { $pct = [math]::Min(100, [double]$Percent) }
    $line = ConvertTo-Json -InputObject ([ordered]@{ type = 'progress'; percent = $pct; message = $Message }) -Compress
    if (-not (Write-OpsroomEventLine $line)) { [Console]::Error.WriteLine("[$pct%] $Message") }
}

function global:Write-OpsroomStatus {
    param([Parameter(Position = 0, Mandatory = $true)][string]$Text, [ValidateSet('info', 'success', 'warning', 'error')][string]$Level = 'info')
    $line = ConvertTo-Json -InputObject ([ordered]@{ type = 'status'; text = $Text; level = $Level }) -Compress
    if (-not (Write-OpsroomEventLine $line)) { [Console]::Error.WriteLine("${Level}: $Text") }
}

function global:Send-OpsroomFile {
    param([Parameter(Position = 0, Mandatory = $true)][string]$Path, [string]$Name, [string]$ContentType)
    $request = [ordered]@{ type = 'attachment'; path = $Path }
    if ($Name) { $request.name = $Name }
    if ($ContentType) { $request.content_type = $ContentType }
    $line = ConvertTo-Json -InputObject $request -Compress
    if (-not (Write-OpsroomEventLine $line)) { [Console]::Error.WriteLine("attachment: $Path") }
}

function global:ConvertTo-OpsroomRow($InputObject) {
    # .NET objects carry dozens of properties; show the ones PowerShell would show.
    $names = $null
    try { $names = $InputObject.PSStandardMembers.DefaultDisplayPropertySet.ReferencedPropertyNames } catch { $names = $null }
    if ($names) { $InputObject = $InputObject | Select-Object -Property @($names) }
    $json = ConvertTo-Json -InputObject $InputObject -Compress -Depth 4
    if (-not $json.StartsWith('{')) { $json = ConvertTo-Json -InputObject ([ordered]@{ value = $InputObject }) -Compress -Depth 4 }
    return $json
}

function global:Write-OpsroomTable {
    param([Parameter(Position = 0, Mandatory = $true)][object[]]$Rows)
    $json = @($Rows | ForEach-Object { ConvertTo-OpsroomRow $_ })
    if ($json.Count -eq 0) { return }
    $line = '{"type":"table","rows":[' + ($json -join ',') + ']}'
    if (-not (Write-OpsroomEventLine $line)) { $Rows | Out-String -Stream | ForEach-Object { [Console]::Out.WriteLine($_) } }
}

# Write-Progress from the script (or any module it calls) lands here, not on a console bar.
function global:Write-Progress {
    [CmdletBinding()]
    param(
        [Parameter(Position = 0)][string]$Activity,
        [Parameter(Position = 1)][string]$Status,
        [Parameter(Position = 2)][int]$Id,
        [int]$PercentComplete = -1,
        [int]$SecondsRemaining = -1,
        [string]$CurrentOperation,
        [int]$ParentId = -1,
        [switch]$Completed,
        [int]$SourceId
    )
    $message = (@($Activity, $Status, $CurrentOperation) | Where-Object { $_ }) -join ': '
    $pct = $null
    if ($Completed) { $pct = 100 } elseif ($PercentComplete -ge 0) { $pct = $PercentComplete }
    Write-OpsroomProgress $pct $message
}

# --- parameters -----------------------------------------------------------------------------

function ConvertFrom-OpsroomJsonElement($Element) {
    switch ($Element.ValueKind.ToString()) {
        'Object' {
            $h = [ordered]@{}
            foreach ($p in $Element.EnumerateObject()) { $h[$p.Name] = ConvertFrom-OpsroomJsonElement $p.Value }
            return , $h
        }
        'Array' {
            $items = [System.Collections.Generic.List[object]]::new()
            foreach ($i in $Element.EnumerateArray()) { $items.Add((ConvertFrom-OpsroomJsonElement $i)) }
            return , $items.ToArray()
        }
        'String' { return $Element.GetString() }
        'Number' {
            $long = 0L
            if ($Element.TryGetInt64([ref]$long)) { return $long }
            return $Element.GetDouble()
        }
        'True' { return $true }
        'False' { return $false }
        default { return $null }
    }
}

function ConvertFrom-OpsroomJson([string]$Json) {
    if ([string]::IsNullOrEmpty($Json)) { return , ([ordered]@{}) }
    if ($PSVersionTable.PSVersion.Major -ge 6) {
        # PowerShell 7's ConvertFrom-Json turns ISO-looking strings into [datetime]: a value
        # must reach the script exactly as typed, so read the JSON with System.Text.Json.
        Add-Type -AssemblyName System.Text.Json -ErrorAction SilentlyContinue
        $doc = [System.Text.Json.JsonDocument]::Parse($Json)
        try { return , (ConvertFrom-OpsroomJsonElement $doc.RootElement) } finally { $doc.Dispose() }
    }
    # Windows PowerShell 5.1 leaves such strings alone.
    $h = [ordered]@{}
    foreach ($p in (ConvertFrom-Json -InputObject $Json).PSObject.Properties) { $h[$p.Name] = $p.Value }
    return , $h
}

function ConvertTo-OpsroomDate($Value) {
    return [datetime]::Parse([string]$Value, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind)
}

function ConvertTo-OpsroomVersion([string]$Text) {
    # [version] needs two to four numbers; anything else (`1.*`) is no bound.
    $parsed = $null
    if ([version]::TryParse($Text, [ref]$parsed)) { return $parsed }
    return $null
}

function Test-OpsroomRequires($Requires) {
    # The script's #Requires, checked before anything of it runs (SPEC §3.10).
    if ($Requires.version) {
        $want = ConvertTo-OpsroomVersion $Requires.version
        $v = $PSVersionTable.PSVersion
        $patch = if ($null -ne $v.Patch) { $v.Patch } else { $v.Build }
        $have = [version]::new($v.Major, $v.Minor, [math]::Max(0, $patch))
        if ($null -ne $want -and $have -lt [version]::new($want.Major, $want.Minor, [math]::Max(0, $want.Build))) {
            Stop-OpsroomBootstrap "#Requires -Version $($Requires.version): this host runs PowerShell $v; nothing was run"
        }
    }
    $editions = @($Requires.editions | Where-Object { $_ })
    if ($editions.Count -gt 0) {
        $edition = if ($PSVersionTable.PSEdition) { [string]$PSVersionTable.PSEdition } else { 'Desktop' }
        if ($editions -notcontains $edition) {
            Stop-OpsroomBootstrap "#Requires -PSEdition $($editions -join ', '): this host runs PowerShell $edition; nothing was run"
        }
    }
    # PowerShell ignores -RunAsAdministrator outside Windows, and so does opsroom.
    if ($Requires.admin -eq $true -and ($PSVersionTable.PSEdition -ne 'Core' -or $IsWindows)) {
        $principal = [Security.Principal.WindowsPrincipal]::new([Security.Principal.WindowsIdentity]::GetCurrent())
        if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
            Stop-OpsroomBootstrap '#Requires -RunAsAdministrator: the job does not run elevated; nothing was run'
        }
    }
    $missing = [System.Collections.Generic.List[string]]::new()
    foreach ($m in @($Requires.modules | Where-Object { $_ })) {
        $exact = ConvertTo-OpsroomVersion ([string]$m.exact)
        $low = ConvertTo-OpsroomVersion ([string]$m.minimum)
        $high = ConvertTo-OpsroomVersion ([string]$m.maximum)
        $found = @(Get-Module -ListAvailable -Name ([string]$m.name) -ErrorAction SilentlyContinue | Where-Object {
                ($null -eq $exact -or $_.Version -eq $exact) -and
                ($null -eq $low -or $_.Version -ge $low) -and
                ($null -eq $high -or $_.Version -le $high)
            })
        if ($found.Count -eq 0) { $missing.Add([string]$m.label) }
    }
    if ($missing.Count -gt 0) {
        $s = if ($missing.Count -gt 1) { 's' } else { '' }
        Stop-OpsroomBootstrap "missing module$s $($missing -join ', ') (#Requires -Modules): install it where the job runs; nothing was run"
    }
}

function ConvertTo-OpsroomSecureString([string]$Text) {
    $secure = [System.Security.SecureString]::new()
    foreach ($c in $Text.ToCharArray()) { $secure.AppendChar($c) }
    $secure.MakeReadOnly()
    return , $secure
}

function New-OpsroomCredential([string]$Parameter, [string]$Secret, [string]$Type) {
    # Messages name the secret and the parameter, never the value or a part of it.
    $raw = [Environment]::GetEnvironmentVariable($Secret)
    if ([string]::IsNullOrEmpty($raw)) { Stop-OpsroomBootstrap "secret $Secret (for -$Parameter) is not set; nothing was run" }
    $user = $null
    $password = $raw
    if ($raw.TrimStart().StartsWith('{')) {
        $fields = $null
        try { $fields = ConvertFrom-OpsroomJson $raw } catch { $fields = $null }
        if ($null -eq $fields -or $null -eq $fields.password) {
            Stop-OpsroomBootstrap "secret $Secret (for -$Parameter) is not JSON with a password; nothing was run"
        }
        $user = [string]$fields.username
        $password = [string]$fields.password
    } elseif ($Type -eq 'pscredential') {
        $colon = $raw.IndexOf(':')
        if ($colon -lt 1) {
            Stop-OpsroomBootstrap "secret $Secret (for -$Parameter) must hold user:password or JSON {""username"": ..., ""password"": ...}; nothing was run"
        }
        $user = $raw.Substring(0, $colon)
        $password = $raw.Substring($colon + 1)
    }
    $secure = ConvertTo-OpsroomSecureString $password
    if ($Type -eq 'securestring') { return , $secure }
    if ([string]::IsNullOrEmpty($user)) { Stop-OpsroomBootstrap "secret $Secret (for -$Parameter) has no user name; nothing was run" }
    return [System.Management.Automation.PSCredential]::new($user, $secure)
}

function New-OpsroomSplat($command, $Values, $Types, $Credentials) {
    # Only what the command declares; never the common parameters, whose binding would
    # let a caller change error handling or switch off -WhatIf.
    $common = @([System.Management.Automation.PSCmdlet]::CommonParameters) + @([System.Management.Automation.PSCmdlet]::OptionalCommonParameters)
    $declared = @{}
    foreach ($name in $command.Parameters.Keys) {
        if ($common -notcontains $name) { $declared[$name.ToLowerInvariant()] = $name }
    }

    $splat = @{}
    foreach ($key in @($Values.Keys)) {
        $real = $declared[([string]$key).ToLowerInvariant()]
        if (-not $real) { Stop-OpsroomBootstrap "$($command.Name) declares no parameter '$key'; nothing was run" }
        $label = [string]$Types[$key]
        $value = $Values[$key]
        $isArray = $label.EndsWith('[]')
        $kind = $label.Replace('[]', '')
        try {
            if ($kind -eq 'switch') {
                $splat[$real] = [switch][bool]$value
            } elseif ($kind -eq 'datetime') {
                if ($isArray) { $splat[$real] = [datetime[]]@(foreach ($v in @($value)) { ConvertTo-OpsroomDate $v }) }
                else { $splat[$real] = ConvertTo-OpsroomDate $value }
            } elseif ($isArray) {
                $splat[$real] = @($value)
            } else {
                $splat[$real] = $value
            }
        } catch {
            Stop-OpsroomBootstrap "bad value for ${key}: $($_.Exception.Message)"
        }
    }
    foreach ($key in @($Credentials.Keys)) {
        $real = $declared[([string]$key).ToLowerInvariant()]
        if (-not $real) { Stop-OpsroomBootstrap "$($command.Name) declares no parameter '$key'; nothing was run" }
        $mapping = $Credentials[$key]
        $splat[$real] = New-OpsroomCredential $real ([string]$mapping.secret) ([string]$mapping.type)
    }

    if ($env:OPSROOM_DRY_RUN -eq '1' -and $command.Parameters.ContainsKey('WhatIf')) {
        $splat['WhatIf'] = [switch]$true
    }
    return $splat
}

# --- run --------------------------------------------------------------------------------------

function Send-OpsroomRows {
    if ($script:OpsroomRows.Count -gt 0) {
        Write-OpsroomTable -Rows $script:OpsroomRows.ToArray()
        $script:OpsroomRows.Clear()
    }
}

function Invoke-OpsroomCommand($command, $splat) {
    # Runs the command with the caller's $ErrorActionPreference (the script's own, for a
    # function file that sets one), then exits with its status.
    $global:LASTEXITCODE = 0
    $script:OpsroomRows = [System.Collections.Generic.List[object]]::new()
    $exitCode = 0
    try {
        & $command @splat | ForEach-Object {
            $item = $_
            if ($null -eq $item) { return }
            $type = $item.GetType()
            if ($item -is [string] -or $type.IsPrimitive -or $type.IsEnum -or $item -is [decimal] -or $item -is [datetime]) {
                Send-OpsroomRows
                [Console]::Out.WriteLine([string]$item)
            } else {
                $script:OpsroomRows.Add($item)
                if ($script:OpsroomRows.Count -ge 200) { Send-OpsroomRows }
            }
        }
        Send-OpsroomRows
        if ($global:LASTEXITCODE -is [int] -and $global:LASTEXITCODE -ne 0) { $exitCode = $global:LASTEXITCODE }
    } catch {
        Send-OpsroomRows
        [Console]::Error.WriteLine(($_ | Out-String).TrimEnd())
        $exitCode = 1
    } finally {
        [Console]::Out.Flush()
        if ($null -ne $global:OpsroomEventWriter) { $global:OpsroomEventWriter.Flush() }
    }
    exit $exitCode
}

function Invoke-OpsroomFunctionFile([string]$OpsroomPath, [string]$OpsroomName, $OpsroomValues, $OpsroomTypes, $OpsroomCredentials) {
    # A scope of its own: what the file's top-level code sets stays here (and its functions see
    # it), never in the bootstrap's variables. That code runs once, then the function once.
    $ErrorActionPreference = 'Continue'
    try {
        . $OpsroomPath
    } catch {
        [Console]::Error.WriteLine(($_ | Out-String).TrimEnd())
        exit 1
    }
    $command = Get-Command -Name $OpsroomName -CommandType @('Function', 'Filter') -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($null -eq $command) { Stop-OpsroomBootstrap "$OpsroomPath defines no function $OpsroomName" }
    $splat = New-OpsroomSplat $command $OpsroomValues $OpsroomTypes $OpsroomCredentials
    Invoke-OpsroomCommand $command $splat
}

function Invoke-OpsroomModuleFunction([string]$OpsroomPath, [string]$OpsroomName, $OpsroomValues, $OpsroomTypes, $OpsroomCredentials) {
    # Imported by path, so the catalog's copy is the one that runs, whatever else is installed.
    try {
        $imported = @(Import-Module -Name $OpsroomPath -PassThru -Force -DisableNameChecking -ErrorAction Stop)
    } catch {
        Stop-OpsroomBootstrap "cannot import module ${OpsroomPath}: $($_.Exception.Message)"
    }
    $module = $imported | Where-Object { $_ -is [System.Management.Automation.PSModuleInfo] } | Select-Object -First 1
    $command = $null
    if ($null -ne $module) {
        $command = @($module.ExportedFunctions.Values) | Where-Object { $_.Name -eq $OpsroomName } | Select-Object -First 1
    }
    if ($null -eq $command) { Stop-OpsroomBootstrap "module $OpsroomPath exports no function $OpsroomName; nothing was run" }
    $splat = New-OpsroomSplat $command $OpsroomValues $OpsroomTypes $OpsroomCredentials
    $ErrorActionPreference = 'Continue'
    Invoke-OpsroomCommand $command $splat
}

try {
    $values = ConvertFrom-OpsroomJson $env:OPSROOM_PARAMS
    $types = ConvertFrom-OpsroomJson $env:OPSROOM_PARAM_TYPES
    $credentials = ConvertFrom-OpsroomJson $env:OPSROOM_PS_CREDENTIALS
    $requires = ConvertFrom-OpsroomJson $env:OPSROOM_PS_REQUIRES
} catch {
    Stop-OpsroomBootstrap "OPSROOM_PARAMS is not valid JSON: $($_.Exception.Message)"
}

Test-OpsroomRequires $requires

$entry = [string]$env:OPSROOM_PS_FUNCTION
$extension = [System.IO.Path]::GetExtension($OpsroomScriptPath).ToLowerInvariant()
if ($entry -and ($extension -eq '.psm1' -or $extension -eq '.psd1')) {
    Invoke-OpsroomModuleFunction $OpsroomScriptPath $entry $values $types $credentials
} elseif ($entry) {
    Invoke-OpsroomFunctionFile $OpsroomScriptPath $entry $values $types $credentials
} else {
    try {
        $command = $ExecutionContext.InvokeCommand.GetCommand($OpsroomScriptPath, [System.Management.Automation.CommandTypes]::ExternalScript)
    } catch {
        Stop-OpsroomBootstrap "cannot load ${OpsroomScriptPath}: $($_.Exception.Message)"
    }
    if ($null -eq $command) { Stop-OpsroomBootstrap "script not found: $OpsroomScriptPath" }
    $splat = New-OpsroomSplat $command $values $types $credentials
    # The script gets PowerShell's normal error behaviour, not the bootstrap's strict one.
    $ErrorActionPreference = 'Continue'
    Invoke-OpsroomCommand $command $splat
}
# Every branch above ends in exit; nothing may fall through to run the file another way.
exit 2
