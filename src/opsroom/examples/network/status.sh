#!/usr/bin/env bash
# @describe Show the network status of a site: WAN links, core switches, firewalls and Wi-Fi.
# Polls the site's network devices (simulated here) and prints one line per device with
# its state, uplink utilisation and the time of its last configuration change.
# Use it first when a store or a warehouse reports "the network is slow".
#
# @arg site![hq|dc1|dc2|store-0042|store-0108|store-0404] Site to check (hq, data centres, or a store)
# @flag --verbose Also show interface counters and the last configuration change
# @example !network status hq
# @example !network status store-0404 --verbose
set -euo pipefail

site="${OPSROOM_ARG_SITE:-hq}"
verbose="${OPSROOM_ARG_VERBOSE:-0}"

case "$site" in
  hq)         devices=("hq-core-sw01:switch" "hq-core-sw02:switch" "hq-fw01:firewall" "hq-wan-mpls:wan" "hq-wan-inet:wan" "hq-wlc01:wifi") ;;
  dc1|dc2)    devices=("${site}-spine01:switch" "${site}-spine02:switch" "${site}-leaf01:switch" "${site}-leaf02:switch" "${site}-fw01:firewall" "${site}-wan-mpls:wan") ;;
  store-????) devices=("${site}-sw01:switch" "${site}-fw01:firewall" "${site}-wan-dsl:wan" "${site}-wan-4g:wan" "${site}-ap01:wifi" "${site}-ap02:wifi") ;;
  *)
    echo "error: unknown site '$site' (try hq, dc1, dc2 or store-NNNN)" >&2
    exit 2
    ;;
esac

# A stable number per device name, so a site always reports the same picture.
stable() { printf '%s' "$1" | cksum | cut -d' ' -f1; }

echo "Network status for ${site} ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
printf '%-22s %-9s %-9s %6s  %s\n' "DEVICE" "TYPE" "STATE" "UPLINK" "NOTE"
printf '%-22s %-9s %-9s %6s  %s\n' "----------------------" "---------" "---------" "------" "--------------------"

problems=0
for entry in "${devices[@]}"; do
  name="${entry%%:*}"
  kind="${entry##*:}"
  n=$(stable "$name")
  util=$(( n % 70 + 5 ))
  state="up"
  note="ok"
  if [[ "$name" == "store-0404-wan-dsl" ]]; then
    state="DOWN"; util=0; note="carrier lost since 06:12, ticket INC-20931"; problems=$((problems + 1))
  elif [[ "$name" == "store-0404-wan-4g" ]]; then
    util=91; note="carrying all traffic (backup link)"; state="degraded"; problems=$((problems + 1))
  elif (( util > 70 )); then
    state="busy"; note="utilisation high"
  fi
  printf '%-22s %-9s %-9s %5d%%  %s\n' "$name" "$kind" "$state" "$util" "$note"
  if [[ "$verbose" == "1" ]]; then
    rx=$(( util * (n % 9 + 2) )); tx=$(( util * (n % 5 + 1) ))
    printf '    in %d Mb/s  out %d Mb/s  errors %d  last change 2026-11-%02d by %s\n' \
      "$rx" "$tx" $(( n % 7 == 0 ? n % 13 : 0 )) $(( n % 20 + 1 )) \
      "$( (( n % 2 )) && echo netops-ansible || echo j.meyer )"
  fi
done

echo
if (( problems > 0 )); then
  echo "${problems} problem(s) at ${site}."
else
  echo "All ${#devices[@]} devices at ${site} healthy."
fi
