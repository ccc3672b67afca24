<#
.SYNOPSIS
    Unlock an Active Directory user account that was locked out by bad passwords.

.DESCRIPTION
    Looks the account up in the chosen domain (simulated in this demo catalog), shows why
    and since when it is locked, unlocks it and tells the user's manager. The most common
    help-desk request on a Monday morning, now done from chat in seconds instead of a
    remote desktop session to a domain controller.

    Supports -WhatIf (chat: --dry-run) to check the account without unlocking it.

.PARAMETER SamAccountName
    The user's logon name (sAMAccountName), e.g. jdoe or store0042.mgr.

.PARAMETER Domain
    The Active Directory domain: corp (head office) or retail (stores).

.PARAMETER Reason
    Why the account is unlocked; written to the audit log and the ticket.

.EXAMPLE
    !ad unlock-account jdoe

    Unlocks jdoe in the corp domain.

.EXAMPLE
    !ad unlock-account store0042.mgr -Domain retail -Reason "INC-20931 called from store"

    Unlocks a store manager's account in the retail domain and records the ticket.

.NOTES
    Needs the ActiveDirectory module and the "Account Operators" delegation on the
    domain controllers when run for real.

.LINK
    https://learn.microsoft.com/powershell/module/activedirectory/unlock-adaccount
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory, Position = 0, HelpMessage = 'Logon name, e.g. jdoe')]
    [ValidatePattern('^[A-Za-z][A-Za-z0-9._-]{1,19}$')]
    [string]$SamAccountName,

    [ValidateSet('corp', 'retail')]
    [string]$Domain = 'corp',

    [ValidateLength(0, 200)]
    [string]$Reason = ''
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# Simulated directory lookup: stable per account name.
$seed = 0
foreach ($c in $SamAccountName.ToCharArray()) { $seed = ($seed * 31 + [int]$c) % 100000 }
$dc = if ($Domain -eq 'corp') { 'CORP-DC0{0}' -f ($seed % 3 + 1) } else { 'RTL-DC0{0}' -f ($seed % 2 + 1) }
$lockedAt = (Get-Date).Date.AddHours(7).AddMinutes($seed % 50)
$badCount = 5 + $seed % 4

if ($SamAccountName -eq 'svc-backup') {
    Write-Error "Refusing to unlock service account '$SamAccountName': service accounts are unlocked by the identity team only."
    exit 1
}

Write-Output "Account $Domain\$SamAccountName found on $dc"
Write-Output ("  locked since {0:HH:mm} after {1} bad passwords (last from {2})" -f $lockedAt, $badCount, "STORE-$('{0:d4}' -f ($seed % 500 + 1))-POS01")

if ($PSCmdlet.ShouldProcess("$Domain\$SamAccountName", 'Unlock-ADAccount')) {
    Start-Sleep -Milliseconds 300
    Write-Output "  unlocked on $dc; replicating to the other domain controllers"
    if ($Reason) { Write-Output "  reason recorded: $Reason" }
    Write-Output "  manager notified by e-mail"
    Write-Output "Done: $SamAccountName can sign in again."
}
else {
    Write-Output "Dry run: $SamAccountName left locked."
}
