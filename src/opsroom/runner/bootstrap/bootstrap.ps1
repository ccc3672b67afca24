# opsroom's PowerShell bootstrap:  pwsh -NoLogo -NoProfile -NonInteractive -File bootstrap.ps1 <script.ps1>
#
# Parameters never travel on the command line. They come as JSON in $env:OPSROOM_PARAMS, with
# their types in $env:OPSROOM_PARAM_TYPES ({"Hosts": "string[]", "When": "datetime"}), and are
# splatted onto the script. Only parameters the script itself declares are ever bound; a common
# parameter (-ErrorAction, -WhatIf, -Confirm, ...) or an unknown name is refused before the
# script starts. -WhatIf is added only when OPSROOM_DRY_RUN is 1 and the script supports
# ShouldProcess.
#
# Output: strings are printed as they are; other pipeline objects become table rows on the event
# channel (the fd in $env:OPSROOM_EVENTS_FD), as does Write-Progress. Scripts may also call
# Write-OpsroomProgress, Write-OpsroomStatus, Write-OpsroomTable and Send-OpsroomFile (attach a
# file of the job's working folder:  Send-OpsroomFile report.csv -Name 'May.csv' -ContentType text/csv).
#
# Exit status: 1 when the script throws, else its $LASTEXITCODE (`exit 3` gives 3);
# 2 when the bootstrap cannot start the script at all.

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Stop-OpsroomBootstrap([string]$Message) {
    [Console]::Error.WriteLine("opsroom: $Message")
    exit 2
}

if ($args.Count -ne 1) { Stop-OpsroomBootstrap 'usage: bootstrap.ps1 <script.ps1>' }
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

try {
    $command = $ExecutionContext.InvokeCommand.GetCommand($OpsroomScriptPath, [System.Management.Automation.CommandTypes]::ExternalScript)
} catch {
    Stop-OpsroomBootstrap "cannot load ${OpsroomScriptPath}: $($_.Exception.Message)"
}
if ($null -eq $command) { Stop-OpsroomBootstrap "script not found: $OpsroomScriptPath" }

try {
    $values = ConvertFrom-OpsroomJson $env:OPSROOM_PARAMS
    $types = ConvertFrom-OpsroomJson $env:OPSROOM_PARAM_TYPES
} catch {
    Stop-OpsroomBootstrap "OPSROOM_PARAMS is not valid JSON: $($_.Exception.Message)"
}

# Only what the script declares in param(); never the common parameters, whose binding would
# let a caller change error handling or switch off -WhatIf.
$common = @([System.Management.Automation.PSCmdlet]::CommonParameters) + @([System.Management.Automation.PSCmdlet]::OptionalCommonParameters)
$declared = @{}
foreach ($name in $command.Parameters.Keys) {
    if ($common -notcontains $name) { $declared[$name.ToLowerInvariant()] = $name }
}

$splat = @{}
foreach ($key in @($values.Keys)) {
    $real = $declared[([string]$key).ToLowerInvariant()]
    if (-not $real) { Stop-OpsroomBootstrap "$($command.Name) declares no parameter '$key'; nothing was run" }
    $label = [string]$types[$key]
    $value = $values[$key]
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

if ($env:OPSROOM_DRY_RUN -eq '1' -and $command.Parameters.ContainsKey('WhatIf')) {
    $splat['WhatIf'] = [switch]$true
}

# --- run --------------------------------------------------------------------------------------

# The script gets PowerShell's normal error behaviour, not the bootstrap's strict one.
$ErrorActionPreference = 'Continue'
$global:LASTEXITCODE = 0
$script:OpsroomRows = [System.Collections.Generic.List[object]]::new()

function Send-OpsroomRows {
    if ($script:OpsroomRows.Count -gt 0) {
        Write-OpsroomTable -Rows $script:OpsroomRows.ToArray()
        $script:OpsroomRows.Clear()
    }
}

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
