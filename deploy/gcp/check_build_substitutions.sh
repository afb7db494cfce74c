#!/usr/bin/env bash
# cloudbuild-deploy.yaml's first step: refuse substitution values outside their allow-list before
# anything runs with deploy rights. Reads DEPLOY_REGION, DEPLOY_CONFIG and DEPLOY_STEPS from the
# environment (the build passes the substitutions that way, never as shell text).
set -euo pipefail

ALLOWED_STEPS=(all apis pubsub iam targets function egress deadletter monitoring)   # not teardown

refuse() { echo "check_build_substitutions: $*" >&2; exit 2; }

[[ "${DEPLOY_REGION:-}" =~ ^[a-z]+-[a-z]+[0-9]+$ ]] ||
  refuse "_REGION '${DEPLOY_REGION:-}' is not a region such as us-central1"
[[ "${DEPLOY_CONFIG:-}" =~ ^deploy/gcp/[A-Za-z0-9_-]+\.env$ ]] ||
  refuse "_DEPLOY_CONFIG '${DEPLOY_CONFIG:-}' is not deploy/gcp/NAME.env"
[[ -f "$DEPLOY_CONFIG" ]] || refuse "_DEPLOY_CONFIG $DEPLOY_CONFIG is not in the source"
[[ -n "${DEPLOY_STEPS:-}" ]] || refuse "_DEPLOY_STEPS is empty"
set -f   # a step name is a word, never a pattern
for step in $DEPLOY_STEPS; do
  [[ " ${ALLOWED_STEPS[*]} " == *" $step "* ]] ||
    refuse "_DEPLOY_STEPS: '$step' is not one of: ${ALLOWED_STEPS[*]}"
done
echo "substitutions accepted: _REGION=$DEPLOY_REGION _DEPLOY_CONFIG=$DEPLOY_CONFIG _DEPLOY_STEPS=$DEPLOY_STEPS"
