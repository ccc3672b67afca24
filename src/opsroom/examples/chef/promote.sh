#!/usr/bin/env bash
# opsroom: dry_run = true
# @describe Promote a Chef cookbook version from one environment to the next.
# Pins the cookbook version currently used in the source environment into the target
# environment's cookbook constraints, uploads the environment to the Chef server
# (simulated here) and lists the nodes that will converge on it at their next run.
# Promotion to the same environment is refused.
#
# @arg cookbook![pos-client|store-firewall|backoffice-base|price-agent|monitoring-agent] Cookbook to promote
# @option --source-env[=test|dev|staging|prod] Environment to take the version from
# @option --target-env[=prod|dev|test|staging] Environment to promote into
# @flag --force Promote even when the target already has a newer version
# @example !chef promote pos-client
# @example !chef promote store-firewall --source-env dev --target-env test
set -euo pipefail

cookbook="${OPSROOM_ARG_COOKBOOK:-}"
source_env="${OPSROOM_ARG_SOURCE_ENV:-test}"
target_env="${OPSROOM_ARG_TARGET_ENV:-prod}"
force="${OPSROOM_ARG_FORCE:-0}"
dry_run="${OPSROOM_DRY_RUN:-0}"

if [[ -z "$cookbook" ]]; then
  echo "error: which cookbook? e.g. !chef promote pos-client" >&2
  exit 2
fi

if [[ "$source_env" == "$target_env" ]]; then
  echo "error: cannot promote ${cookbook} from ${source_env} to itself; pick a different --target-env" >&2
  exit 1
fi

rank() {
  case "$1" in dev) echo 0 ;; test) echo 1 ;; staging) echo 2 ;; prod) echo 3 ;; *) echo 9 ;; esac
}
if (( $(rank "$target_env") < $(rank "$source_env") )) && [[ "$force" != "1" ]]; then
  echo "error: ${target_env} comes before ${source_env}; that is a rollback, add --force if you mean it" >&2
  exit 1
fi

n=$(printf '%s' "$cookbook" | cksum | cut -d' ' -f1)
major=$(( n % 4 + 1 )); minor=$(( n % 12 )); patch=$(( n % 7 + 1 ))
new_version="${major}.${minor}.${patch}"
old_version="${major}.${minor}.$(( patch - 1 ))"
nodes=$(( n % 40 + 3 ))

echo "Promoting cookbook ${cookbook}: ${source_env} -> ${target_env}"
echo "  ${source_env} pins ${cookbook} = ${new_version}"
echo "  ${target_env} pins ${cookbook} = ${old_version}"
sleep 0.3
echo "  knife environment show ${target_env} -F json > ${target_env}.json"
echo "  set cookbook_versions[\"${cookbook}\"] = \"= ${new_version}\""
if [[ "$dry_run" == "1" ]]; then
  echo "Dry run: ${target_env} not uploaded."
  exit 0
fi
sleep 0.3
echo "  knife environment from file ${target_env}.json"
echo "Updated Environment ${target_env}"
echo "${nodes} node(s) in ${target_env} will converge on ${cookbook} ${new_version} within 30 min."
