# opsroom: aliases = ["vmware snapshot"]
<#
.SYNOPSIS
    Take a VMware snapshot of a virtual machine before a change.

.DESCRIPTION
    Creates a vCenter snapshot of one VM (simulated in this demo catalog), named after the
    change by default, and tags it with its retention so the nightly clean-up job removes it
    after RetentionDays. Prints the snapshot as a table: VM, snapshot name, size, expiry.

    Supports -WhatIf (chat: --dry-run) to check the VM and datastore space only.

.PARAMETER VMName
    Name of the virtual machine in vCenter, e.g. erp-app01.

.PARAMETER SnapshotName
    Name of the snapshot; defaults to pre-change-<today's date>.

.PARAMETER Memory
    Include the VM's memory in the snapshot (slower, lets you return to a running state).

.PARAMETER RetentionDays
    Days to keep the snapshot before the nightly clean-up removes it (1-30).

.EXAMPLE
    !vmware new-snapshot erp-app01

    Snapshot erp-app01 as pre-change-<today>, kept for 7 days.

.EXAMPLE
    !vmware snapshot pos-db02 -SnapshotName CHG-4711 -Memory -RetentionDays 3

    Snapshot with memory for change CHG-4711, removed after three days.

.NOTES
    Needs VMware PowerCLI and a vCenter role with "Virtual machine > Snapshot management"
    when run for real.
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory, Position = 0)]
    [ValidatePattern('^[a-z0-9][a-z0-9-]{1,62}$')]
    [Alias('VM')]
    [string]$VMName,

    [ValidateLength(1, 80)]
    [string]$SnapshotName = "pre-change-$(Get-Date -Format yyyyMMdd)",

    [switch]$Memory,

    [ValidateRange(1, 30)]
    [int]$RetentionDays = 7
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$seed = 0
foreach ($c in $VMName.ToCharArray()) { $seed = ($seed * 31 + [int]$c) % 100000 }
$datastore = 'ds-{0}-{1:d2}' -f ($(if ($seed % 2) { 'gold' } else { 'silver' })), ($seed % 12 + 1)
$diskGb = 40 + $seed % 400
$sizeGb = [math]::Round($diskGb * 0.02 + $(if ($Memory) { 16 } else { 0 }), 1)

Write-Progress -Activity "Snapshot $VMName" -Status 'Checking datastore space' -PercentComplete 10
Write-Verbose "VM $VMName on $datastore, $diskGb GB provisioned"

if ($PSCmdlet.ShouldProcess($VMName, "New-Snapshot '$SnapshotName'")) {
    Write-Progress -Activity "Snapshot $VMName" -Status 'Creating snapshot' -PercentComplete 40
    Start-Sleep -Milliseconds $(if ($Memory) { 1200 } else { 400 })
    Write-Progress -Activity "Snapshot $VMName" -Status 'Tagging retention' -PercentComplete 90
    $state = 'created'
}
else {
    $state = 'dry run'
}
Write-Progress -Activity "Snapshot $VMName" -Completed

[PSCustomObject]@{
    VM        = $VMName
    Snapshot  = $SnapshotName
    Memory    = [bool]$Memory
    SizeGB    = $sizeGb
    Datastore = $datastore
    Expires   = (Get-Date).AddDays($RetentionDays).ToString('yyyy-MM-dd')
    State     = $state
}
