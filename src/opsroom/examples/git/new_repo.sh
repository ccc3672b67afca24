#!/usr/bin/env bash
# @describe Create a new Git repository from one of the team's templates.
# Creates the repository on the Git server (simulated here) from a template, with branch
# protection on main, the owning team as maintainers, CODEOWNERS and the CI pipeline of the
# template already in place. Repository names are lower-case words joined by dashes,
# 3 to 40 characters, starting with a letter (e.g. price-sync-worker).
#
# @arg name! Repository name: lower-case letters, digits and dashes (e.g. price-sync-worker)
# @option --template[=python-service|java-service|powershell-module|ansible-role|terraform-module] Template to start from
# @option --owner[=platform|store-systems|data|network|identity] Team that owns the repository
# @option --description <TEXT> One line shown on the repository page
# @flag --private Make the repository visible to its owners only (default: internal)
# @example !git new-repo price-sync-worker
# @example !git new-repo ad-tools --template powershell-module --owner identity --private
set -euo pipefail

name="${OPSROOM_ARG_NAME:-}"
template="${OPSROOM_ARG_TEMPLATE:-python-service}"
owner="${OPSROOM_ARG_OWNER:-platform}"
description="${OPSROOM_ARG_DESCRIPTION:-}"
private="${OPSROOM_ARG_PRIVATE:-0}"
requester="${OPSROOM_REQUESTER:-local:${USER:-ops}}"

if [[ ! "$name" =~ ^[a-z][a-z0-9-]{2,39}$ || "$name" == *--* || "$name" == *- ]]; then
  echo "error: '${name}' is not a valid repository name: use 3-40 lower-case letters, digits and single dashes, starting with a letter" >&2
  exit 2
fi
case "$name" in
  opsroom-catalog|pos-client|infra)
    echo "error: ${owner}/${name} already exists: https://git.corp.example/${owner}/${name}" >&2
    exit 1
    ;;
esac

visibility="internal"
[[ "$private" == "1" ]] && visibility="private"
[[ -z "$description" ]] && description="${name} (from ${template})"

echo "Creating ${owner}/${name} from template ${template} (${visibility})"
sleep 0.2
echo "  created repository https://git.corp.example/${owner}/${name}"
echo "  description: ${description}"
echo "  copied template ${template}@v$(( ${#template} % 5 + 2 )).$(( ${#name} % 10 ))"
echo "  protected branch main: 1 review, CI must pass, no force-push"
echo "  maintainers: team ${owner}; CODEOWNERS: * @${owner}"
echo "  requested by ${requester}"
echo
echo "Clone it with:"
echo "  git clone git@git.corp.example:${owner}/${name}.git"
