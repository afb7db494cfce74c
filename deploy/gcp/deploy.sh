#!/usr/bin/env bash
# Deploy mirror-vip to Google Cloud: topics, least-privilege identities, the Cloud Function, its
# dead-letter policy, log-based metrics, a dashboard and alerts. Safe to re-run: every step creates
# what is missing and updates what exists. See docs/deploy-gcp.md.
#
# Usage: deploy/gcp/deploy.sh [--config FILE] [--dry-run] [STEP...]
#   STEP: all (default) | apis | pubsub | iam | targets | function | egress | deadletter |
#         monitoring | teardown
#   --config FILE  settings (default deploy/gcp/deploy.env; see deploy.env.example)
#   --dry-run      print every gcloud command, one per line, shell-quoted, without running any;
#                  values that only the cloud can tell (project number, the trigger's subscription,
#                  a new channel's id) appear as DRY_RUN_* placeholders
# MIRROR_VIP_<KEY> in the environment overrides KEY from the config file.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
cd "$REPO_ROOT"   # --source=function is relative to the repository root

ALL_STEPS=(apis pubsub iam targets function egress deadletter monitoring)
SETTINGS=(PROJECT REGION TOPIC DEAD_LETTER_TOPIC DEAD_LETTER_SUBSCRIPTION FUNCTION_NAME
  MIRROR_CONFIG_FILE IRIS_VM_SERVICE_ACCOUNT NOTIFICATION_CHANNEL ALERT_EMAIL FUNCTION_SA_NAME
  TRIGGER_SA_NAME CUSTOM_ROLE_ID MAX_INSTANCES MIN_INSTANCES MAX_DELIVERY_ATTEMPTS FUNCTION_TIMEOUT
  BUILD_DIR PYTHON BUILD_SA_NAME EGRESS_SUBNET HEALTH_FIREWALL_RULE NOTICE_CHANNEL MOVE_BURST_MOVES
  MOVE_BURST_MINUTES)
APIS=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com eventarc.googleapis.com pubsub.googleapis.com
  compute.googleapis.com iam.googleapis.com logging.googleapis.com monitoring.googleapis.com)
# Dead letters are kept as long as Pub/Sub allows: 31 days on the topic, 7 days on the subscription.
DLQ_TOPIC_RETENTION=31d
DLQ_TOPIC_RETENTION_S=2678400s
DLQ_SUBSCRIPTION_RETENTION=7d
DLQ_SUBSCRIPTION_RETENTION_S=604800s
DASHBOARD_NAME=mirror-vip   # displayName in dashboard.json
# Eventarc gives the trigger's push subscription a 10 s ack deadline, which for push is also the
# request timeout: a move that runs longer is redelivered while it still runs, and every expiry
# spends a delivery attempt. 600 s is Pub/Sub's maximum and exceeds the function's 540 s limit.
TRIGGER_ACK_DEADLINE_S=600
# With --concurrency=1 every event in flight needs an instance. In a zone outage every mirror fails
# over at once, and each may also have a heartbeat or a redelivery in flight: MAX_INSTANCES is
# raised to this many per mirror. Beyond max instances, the push is refused (429) and Pub/Sub backs
# off (10 s, doubling up to 600 s), delaying the move by that much.
INSTANCES_PER_MIRROR=2
MANAGED_LABEL=managed-by=mirror-vip

DRY_RUN=0
CONFIG="$SCRIPT_DIR/deploy.env"
STEPS=()

usage() { sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() { echo "deploy.sh: $*" >&2; exit 2; }
say() { echo "==> $*" >&2; }

while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --config) (($# >= 2)) || die "--config needs a file"; CONFIG="$2"; shift ;;
    --config=*) CONFIG="${1#--config=}" ;;
    -h | --help) usage; exit 0 ;;
    all) STEPS+=("${ALL_STEPS[@]}") ;;
    apis | pubsub | iam | targets | function | egress | deadletter | monitoring | teardown)
      STEPS+=("$1") ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
((${#STEPS[@]})) || STEPS=("${ALL_STEPS[@]}")

# --- settings -------------------------------------------------------------------------------------

[[ -f "$CONFIG" ]] || die "config file $CONFIG not found (copy deploy/gcp/deploy.env.example)"
# shellcheck source=/dev/null  # the user's settings file
source "$CONFIG"
for key in "${SETTINGS[@]}"; do
  override="MIRROR_VIP_$key"
  if [[ -n "${!override+set}" ]]; then printf -v "$key" '%s' "${!override}"; fi
done

: "${TOPIC:=mirror-vip-events}"
: "${DEAD_LETTER_TOPIC:=${TOPIC}-dead-letter}"
: "${DEAD_LETTER_SUBSCRIPTION:=${DEAD_LETTER_TOPIC}-keep}"
: "${FUNCTION_NAME:=mirror-vip}"
: "${FUNCTION_SA_NAME:=mirror-vip-function}"
: "${TRIGGER_SA_NAME:=mirror-vip-trigger}"
: "${CUSTOM_ROLE_ID:=mirrorVipMover}"
: "${BUILD_SA_NAME:=mirror-vip-build}"
: "${EGRESS_SUBNET:=}"
: "${HEALTH_FIREWALL_RULE:=mirror-vip-health-probes}"
: "${NOTICE_CHANNEL:=}"
: "${MOVE_BURST_MOVES:=3}"
: "${MOVE_BURST_MINUTES:=10}"
: "${MAX_INSTANCES:=10}"
: "${MIN_INSTANCES:=0}"
: "${MAX_DELIVERY_ATTEMPTS:=10}"
: "${FUNCTION_TIMEOUT:=}"
: "${NOTIFICATION_CHANNEL:=}"
: "${ALERT_EMAIL:=}"
: "${BUILD_DIR:=}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

require() {
  local key
  for key in "$@"; do
    [[ -n "${!key:-}" ]] || die "$key is required in $CONFIG (or MIRROR_VIP_$key)"
  done
}
require PROJECT
((MAX_DELIVERY_ATTEMPTS >= 5 && MAX_DELIVERY_ATTEMPTS <= 100)) ||
  die "MAX_DELIVERY_ATTEMPTS must be 5..100 (Pub/Sub's limits), got $MAX_DELIVERY_ATTEMPTS"
[[ "$MAX_INSTANCES" =~ ^[1-9][0-9]*$ ]] || die "MAX_INSTANCES must be a positive integer, got '$MAX_INSTANCES'"
[[ "$MOVE_BURST_MOVES" =~ ^[1-9][0-9]*$ ]] ||
  die "MOVE_BURST_MOVES must be a positive integer, got '$MOVE_BURST_MOVES'"
# Cloud Monitoring's alignment period (the window) may not exceed one day.
if ! [[ "$MOVE_BURST_MINUTES" =~ ^[1-9][0-9]*$ ]] || ((MOVE_BURST_MINUTES > 1440)); then
  die "MOVE_BURST_MINUTES must be 1..1440, got '$MOVE_BURST_MINUTES'"
fi

FUNCTION_SA="${FUNCTION_SA_NAME}@${PROJECT}.iam.gserviceaccount.com"
TRIGGER_SA="${TRIGGER_SA_NAME}@${PROJECT}.iam.gserviceaccount.com"
BUILD_SA="${BUILD_SA_NAME}@${PROJECT}.iam.gserviceaccount.com"
# Before the role was split by scope (render_iam.py), CUSTOM_ROLE_ID itself was bound project-wide.
LEGACY_ROLE_NAME="projects/${PROJECT}/roles/${CUSTOM_ROLE_ID}"
DLQ_TOPIC_PATH="projects/${PROJECT}/topics/${DEAD_LETTER_TOPIC}"

if [[ -z "$BUILD_DIR" ]]; then
  BUILD_DIR="$(mktemp -d "${TMPDIR:-/tmp}/mirror-vip-deploy.XXXXXX")"
  if ((DRY_RUN)); then
    say "rendered files (env file, dashboard, alert policies) are kept in $BUILD_DIR"
  else
    trap 'rm -rf "$BUILD_DIR"' EXIT
  fi
fi
mkdir -p "$BUILD_DIR"

export CLOUDSDK_CORE_DISABLE_PROMPTS=1   # never wait for an answer (Cloud Build has no terminal)

# --- running commands -----------------------------------------------------------------------------

# Print a command as one shell-quoted line: on the script's stdout in a dry run (fd 3, so that
# commands inside $(...) are shown too), on stderr otherwise.
exec 3>&1
show() {
  local line
  printf -v line '%q ' "$@"
  if ((DRY_RUN)); then echo "${line% }" >&3; else echo "+ ${line% }" >&2; fi
}

# A command that changes something.
run() {
  show "$@"
  ((DRY_RUN)) || "$@"
}

# A command whose success says whether a resource exists. A dry run assumes that it does not
# (deploy shows the create path) or, during teardown, that it does (teardown shows the deletes).
DRY_RUN_EXISTS=1
exists() {
  show "$@"
  if ((DRY_RUN)); then return "$DRY_RUN_EXISTS"; fi
  "$@" >/dev/null 2>&1
}

# Describe a resource: probe VAR DESCRIBE... stores the output in VAR and succeeds when the
# resource exists (one call answers both questions). A dry run behaves like `exists`.
probe() {
  local var="$1" out=""
  shift
  show "$@"
  if ((DRY_RUN)); then
    printf -v "$var" '%s' ""
    return "$DRY_RUN_EXISTS"
  fi
  out="$("$@" 2>/dev/null)" || return 1
  printf -v "$var" '%s' "$out"
}

# A command whose output is needed; a dry run prints the command and yields $PLACEHOLDER.
read_value() {
  local placeholder="$1"
  shift
  show "$@"
  if ((DRY_RUN)); then echo "$placeholder"; else "$@"; fi
}

# IAM is eventually consistent: a service account created a moment ago may not be bindable yet.
run_with_retries() {
  local attempt
  show "$@"
  ((DRY_RUN)) && return 0
  for attempt in 1 2 3 4 5 6; do
    if "$@"; then return 0; fi
    ((attempt < 6)) || break
    echo "retrying in $((attempt * 5)) s (IAM propagation)" >&2
    sleep $((attempt * 5))
  done
  return 1
}

# Copy a template, replacing __KEY__ placeholders: render SRC DEST KEY=VALUE...
render() {
  local src="$1" dest="$2" pair text value
  shift 2
  text="$(<"$src")"
  for pair in "$@"; do
    value="${pair#*=}"   # quoted below: no pattern or '&' expansion in names
    text="${text//"__${pair%%=*}__"/"$value"}"
  done
  printf '%s\n' "$text" >"$dest"
}

# --- steps ----------------------------------------------------------------------------------------

step_apis() {
  say "enabling APIs"
  run gcloud services enable "${APIS[@]}" --project="$PROJECT"
}

step_pubsub() {
  say "topics and the dead-letter subscription"
  local state
  if ! probe state gcloud pubsub topics describe "$TOPIC" --project="$PROJECT" --format=value\(name\); then
    run gcloud pubsub topics create "$TOPIC" --project="$PROJECT"
  fi

  if probe state gcloud pubsub topics describe "$DEAD_LETTER_TOPIC" --project="$PROJECT" \
    --format=value\(messageRetentionDuration\); then
    if [[ "$state" != "$DLQ_TOPIC_RETENTION_S" ]]; then
      run gcloud pubsub topics update "$DEAD_LETTER_TOPIC" --project="$PROJECT" \
        --message-retention-duration="$DLQ_TOPIC_RETENTION"
    fi
  else
    run gcloud pubsub topics create "$DEAD_LETTER_TOPIC" --project="$PROJECT" \
      --message-retention-duration="$DLQ_TOPIC_RETENTION"
  fi

  # A pull subscription nobody consumes: dead letters wait here until an operator reads them.
  if probe state gcloud pubsub subscriptions describe "$DEAD_LETTER_SUBSCRIPTION" --project="$PROJECT" \
    --format='value[separator=" "](messageRetentionDuration,expirationPolicy.ttl)'; then
    local retention ttl
    read -r retention ttl <<<"$state"
    if [[ "$retention" != "$DLQ_SUBSCRIPTION_RETENTION_S" ]]; then
      run gcloud pubsub subscriptions update "$DEAD_LETTER_SUBSCRIPTION" --project="$PROJECT" \
        --message-retention-duration="$DLQ_SUBSCRIPTION_RETENTION"
    fi
    if [[ -n "$ttl" ]]; then
      run gcloud pubsub subscriptions update "$DEAD_LETTER_SUBSCRIPTION" --project="$PROJECT" \
        --expiration-period=never
    fi
  else
    run gcloud pubsub subscriptions create "$DEAD_LETTER_SUBSCRIPTION" --project="$PROJECT" \
      --topic="$DEAD_LETTER_TOPIC" --message-retention-duration="$DLQ_SUBSCRIPTION_RETENTION" \
      --expiration-period=never --ack-deadline=60
  fi
}

ensure_service_account() {
  local name="$1" display="$2"
  if ! exists gcloud iam service-accounts describe "${name}@${PROJECT}.iam.gserviceaccount.com" --project="$PROJECT"; then
    run gcloud iam service-accounts create "$name" --project="$PROJECT" --display-name="$display"
  fi
}

# The function's custom roles and where each is bound, one line per thing (render_iam.py's
# docstring): function-role.yaml split by the scope GCE allows for each permission, narrowed to the
# resources of the mirror config. Writes the role and condition files into BUILD_DIR.
function_iam_plan() {
  require MIRROR_CONFIG_FILE
  "$PYTHON" "$SCRIPT_DIR/render_iam.py" --role-file deploy/gcp/function-role.yaml \
    --mirror-config "$MIRROR_CONFIG_FILE" --project "$PROJECT" --role-prefix "$CUSTOM_ROLE_ID" \
    --out-dir "$BUILD_DIR" || die "invalid role file or mirror config $MIRROR_CONFIG_FILE"
}

# Create or update a project custom role from a file: ensure_role ID FILE.
ensure_role() {
  local id="$1" file="$2" deleted
  if probe deleted gcloud iam roles describe "$id" --project="$PROJECT" --format='value(deleted)'; then
    # Within 7 days of a teardown the role can be undeleted (its id stays taken for 37 days).
    if [[ "$deleted" == "True" ]]; then
      run gcloud iam roles undelete "$id" --project="$PROJECT"
    fi
    run gcloud iam roles update "$id" --project="$PROJECT" --file="$file" --quiet
  else
    run gcloud iam roles create "$id" --project="$PROJECT" --file="$file"
  fi
}

# The subnetwork of a member's NIC, as projects/P/regions/R/subnetworks/S: member_subnetwork ZONE
# INSTANCE NIC_INDEX. The mirror config does not name it; the VM does.
member_subnetwork() {
  local zone="$1" instance="$2" nic="$3" url
  url="$(read_value "projects/$PROJECT/regions/${zone%-*}/subnetworks/DRY_RUN_SUBNETWORK_OF_$instance" \
    gcloud compute instances describe "$instance" --zone="$zone" --project="$PROJECT" \
    --format="value(networkInterfaces[$nic].subnetwork)")"
  [[ "$url" == */subnetworks/* ]] || die "$instance has no subnetwork on nic$nic"
  [[ "$url" == projects/* ]] || url="projects/${url##*/projects/}"
  echo "$url"
}

# Run a binding command: apply_binding add|remove WHAT COMMAND... A failed grant stops the
# deployment; a failed revoke is a binding (or resource) already gone.
apply_binding() {
  local verb="$1" what="$2"
  shift 2
  if [[ "$verb" == add ]]; then
    run_with_retries "$@" || die "could not grant $what"
  else
    run "$@" || echo "($what: already gone)" >&2
  fi
}

# A project binding of the function's account: project_binding add|remove ROLE_ID CONDITION_FILE|-
# CONDITION_TITLE. The title carries a digest of the condition, so a changed mirror config (a new
# condition) replaces the old binding instead of adding one beside it.
project_binding() {
  local verb="$1" role="projects/$PROJECT/roles/$2" file="$3" title="${4:-}" current
  local member="serviceAccount:${FUNCTION_SA}"
  if [[ "$verb" == remove ]]; then
    apply_binding remove "$role on $PROJECT" gcloud projects remove-iam-policy-binding "$PROJECT" \
      --member="$member" --role="$role" --all --quiet
  elif [[ "$file" == - ]]; then
    apply_binding add "$role on $PROJECT" gcloud projects add-iam-policy-binding "$PROJECT" \
      --member="$member" --role="$role" --condition=None --quiet
  else
    current="$(read_value "" gcloud projects get-iam-policy "$PROJECT" \
      --flatten='bindings[].members' --filter="bindings.role=$role AND bindings.members=$member" \
      --format='value(bindings.condition.title)')"
    [[ "$current" == "$title" ]] && return 0
    if [[ -n "$current" ]]; then
      run gcloud projects remove-iam-policy-binding "$PROJECT" --member="$member" --role="$role" \
        --all --quiet
    fi
    apply_binding add "$role on $PROJECT" gcloud projects add-iam-policy-binding "$PROJECT" \
      --member="$member" --role="$role" --condition-from-file="$file" --quiet
  fi
}

# Grant (add) or revoke (remove) every binding of the function's account that the plan lists.
function_bindings() {
  local verb="$1" plan="$2" kind role a b c subnet region seen=" "
  local member="serviceAccount:${FUNCTION_SA}"
  while read -r kind role a b c; do
    case "$kind" in
      project) project_binding "$verb" "$role" "$b" "$c" ;;
      instance)
        apply_binding "$verb" "$role on instance $b" gcloud compute instances \
          "$verb-iam-policy-binding" "$b" --zone="$a" --project="$PROJECT" --member="$member" \
          --role="projects/$PROJECT/roles/$role" --condition=None --quiet
        ;;
      subnetwork)
        subnet="$(member_subnetwork "$a" "$b" "$c")"
        [[ "$seen" == *" $role/$subnet "* ]] && continue # members share their subnetwork
        seen+="$role/$subnet "
        region="${subnet#*/regions/}"
        apply_binding "$verb" "$role on $subnet" gcloud compute networks subnets \
          "$verb-iam-policy-binding" "${subnet##*/}" --region="${region%%/*}" --project="$PROJECT" \
          --member="$member" --role="projects/$PROJECT/roles/$role" --condition=None --quiet
        ;;
    esac
  done < <(grep -v '^role ' <<<"$plan")
}

# The account that builds the function's image (gcloud functions deploy --build-service-account):
# write its build logs, push to the function's image repository, read the uploaded sources. Both
# repositories are created by the first deployment, so their grants are project bindings conditioned
# on their names.
build_sa_bindings() {
  local verb="$1" number member="serviceAccount:${BUILD_SA}"
  number="$(read_value DRY_RUN_PROJECT_NUMBER gcloud projects describe "$PROJECT" \
    --format='value(projectNumber)')"
  local -a grants=(
    "roles/logging.logWriter|"
    "roles/artifactregistry.writer|resource.name == \"projects/$PROJECT/locations/$REGION/repositories/gcf-artifacts\""
    "roles/storage.objectViewer|resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-$number-$REGION\")"
  )
  local grant role expression condition
  for grant in "${grants[@]}"; do
    role="${grant%%|*}" expression="${grant#*|}" condition=None
    [[ -z "$expression" ]] || condition="^;^title=mirror-vip build: ${role#roles/};expression=$expression"
    if [[ "$verb" == add ]]; then
      apply_binding add "$role to $BUILD_SA" gcloud projects add-iam-policy-binding "$PROJECT" \
        --member="$member" --role="$role" --condition="$condition" --quiet
    else
      apply_binding remove "$role to $BUILD_SA" gcloud projects remove-iam-policy-binding \
        "$PROJECT" --member="$member" --role="$role" --all --quiet
    fi
  done
}

# Deployments before the split bound CUSTOM_ROLE_ID itself on the project: revoke it and delete the
# role, once the scoped bindings are in place (make before break).
retire_project_wide_role() {
  local deleted
  if probe deleted gcloud iam roles describe "$CUSTOM_ROLE_ID" --project="$PROJECT" \
    --format='value(deleted)' && [[ "$deleted" != "True" ]]; then
    run gcloud projects remove-iam-policy-binding "$PROJECT" --member="serviceAccount:${FUNCTION_SA}" \
      --role="$LEGACY_ROLE_NAME" --all --quiet || echo "(no project-wide binding left)" >&2
    run gcloud iam roles delete "$CUSTOM_ROLE_ID" --project="$PROJECT" --quiet
  fi
}

step_iam() {
  require IRIS_VM_SERVICE_ACCOUNT REGION
  say "custom roles, service accounts and bindings"
  local plan id file
  plan="$(function_iam_plan)"
  while read -r _ id file; do
    ensure_role "$id" "$file"
  done < <(grep '^role ' <<<"$plan")

  ensure_service_account "$FUNCTION_SA_NAME" "mirror-vip function (moves the VIP)"
  ensure_service_account "$TRIGGER_SA_NAME" "mirror-vip Eventarc trigger (invokes the function)"
  ensure_service_account "$BUILD_SA_NAME" "mirror-vip function build (builds its image)"

  # The function: its roles on the member VMs, their subnetworks, the configured addresses, rules
  # and routes, and project-wide reads only (stdout logs need no role on Cloud Run).
  function_bindings add "$plan"
  retire_project_wide_role
  build_sa_bindings add
  # The trigger: receive events; run.invoker on the function's service is granted after deploy.
  run_with_retries gcloud projects add-iam-policy-binding "$PROJECT" \
    --member="serviceAccount:${TRIGGER_SA}" --role=roles/eventarc.eventReceiver --condition=None --quiet
  # The IRIS VMs: publish to this one topic. No Compute permission at all.
  run gcloud pubsub topics add-iam-policy-binding "$TOPIC" --project="$PROJECT" \
    --member="serviceAccount:${IRIS_VM_SERVICE_ACCOUNT}" --role=roles/pubsub.publisher
}

# Route mode (and a forwarding-rule public IP) needs, per member, a target instance for the rule to
# point at, and route mode needs canIpForward: the VM must accept packets for the VIP it does not
# own. Target instances are created here; canIpForward can only be set when a VM is created, so a
# member without it stops the deployment with the command that shows how to fix it.
step_targets() {
  require MIRROR_CONFIG_FILE
  say "target instances and canIpForward for the members of $MIRROR_CONFIG_FILE"
  local lines mode zone instance target forwards
  lines="$("$PYTHON" "$SCRIPT_DIR/render_function_env.py" --mirror-config "$MIRROR_CONFIG_FILE" \
    --project "$PROJECT" --members)" || die "invalid mirror config $MIRROR_CONFIG_FILE"
  while read -r mode zone instance target; do
    [[ -n "$mode" ]] || continue
    if [[ "$target" != "-" ]] && ! exists gcloud compute target-instances describe "$target" \
      --zone="$zone" --project="$PROJECT"; then
      run gcloud compute target-instances create "$target" --instance="$instance" \
        --zone="$zone" --project="$PROJECT"
    fi
    if [[ "$mode" == "route" ]]; then
      forwards="$(read_value True gcloud compute instances describe "$instance" --zone="$zone" \
        --project="$PROJECT" --format='value(canIpForward)')"
      [[ "$forwards" == "True" ]] || die "$instance has canIpForward=false: route mode cannot \
deliver the VIP to it; recreate it with --can-ip-forward (docs/route-mode.md, 'Guest and project setup')"
    fi
  done <<<"$lines"
}

step_function() {
  require REGION MIRROR_CONFIG_FILE
  say "validating $MIRROR_CONFIG_FILE and deploying the function"
  local env_file="$BUILD_DIR/function-env.yaml" rendered timeout mirrors max_instances subscription ack
  # One line: the function timeout in seconds and the number of mirrors.
  rendered="$("$PYTHON" "$SCRIPT_DIR/render_function_env.py" --mirror-config "$MIRROR_CONFIG_FILE" \
    --project "$PROJECT" --topic "projects/$PROJECT/topics/$TOPIC" --out "$env_file")" ||
    die "invalid mirror config $MIRROR_CONFIG_FILE"
  read -r timeout mirrors <<<"$rendered"
  [[ -n "$FUNCTION_TIMEOUT" ]] || FUNCTION_TIMEOUT="${timeout}s"
  max_instances="$MAX_INSTANCES"
  if ((mirrors * INSTANCES_PER_MIRROR > max_instances)); then
    max_instances=$((mirrors * INSTANCES_PER_MIRROR))
    say "MAX_INSTANCES=$MAX_INSTANCES is too few for $mirrors mirrors failing over at once: using $max_instances"
  fi

  run gcloud functions deploy "$FUNCTION_NAME" --gen2 --project="$PROJECT" --region="$REGION" \
    --runtime=python312 --source=function --entry-point=on_mirror_event \
    --trigger-topic="$TOPIC" --retry \
    --service-account="$FUNCTION_SA" --trigger-service-account="$TRIGGER_SA" \
    --build-service-account="projects/${PROJECT}/serviceAccounts/${BUILD_SA}" \
    --timeout="$FUNCTION_TIMEOUT" --max-instances="$max_instances" \
    --min-instances="$MIN_INSTANCES" --concurrency=1 --memory=512Mi \
    --env-vars-file="$env_file" --ingress-settings=internal-only --quiet
  run_with_retries gcloud functions add-invoker-policy-binding "$FUNCTION_NAME" --project="$PROJECT" \
    --region="$REGION" --member="serviceAccount:${TRIGGER_SA}"

  # The deployment owns the trigger's subscription (and may have just created it with 10 s).
  subscription="$(trigger_subscription)"
  if ! probe ack gcloud pubsub subscriptions describe "$subscription" --project="$PROJECT" \
    --format='value(ackDeadlineSeconds)' || [[ "$ack" != "$TRIGGER_ACK_DEADLINE_S" ]]; then
    run gcloud pubsub subscriptions update "$subscription" --project="$PROJECT" \
      --ack-deadline="$TRIGGER_ACK_DEADLINE_S"
  fi
}

# Corroboration: before a takeover the function asks the members' IRIS health endpoints, at their
# private IPs. Deployed, it reaches them through Direct VPC egress from EGRESS_SUBNET (private
# ranges only: Google APIs stay on the default path), and one firewall rule lets exactly that
# subnet's range reach the members (by their service account) on the health port(s) of the mirror
# config. The installed gcloud's `functions deploy` has no Direct VPC flags, so egress is set on the
# function's Cloud Run service: run this step after every `function` step (`all` does), as a
# function deployment writes the service anew.
step_egress() {
  require REGION MIRROR_CONFIG_FILE
  local ports port rules="" network range
  ports="$("$PYTHON" "$SCRIPT_DIR/render_function_env.py" --mirror-config "$MIRROR_CONFIG_FILE" \
    --project "$PROJECT" --health-ports)" || die "invalid mirror config $MIRROR_CONFIG_FILE"
  if [[ -z "$ports" ]]; then
    say "corroboration is off for every mirror: no Direct VPC egress and no health-port firewall rule"
    return 0
  fi
  require EGRESS_SUBNET IRIS_VM_SERVICE_ACCOUNT
  say "Direct VPC egress from $EGRESS_SUBNET; firewall rule $HEALTH_FIREWALL_RULE to tcp port(s) $ports"
  for port in $ports; do rules+="${rules:+,}tcp:$port"; done
  read -r network range <<<"$(read_value "DRY_RUN_EGRESS_NETWORK DRY_RUN_EGRESS_RANGE" \
    gcloud compute networks subnets describe "$EGRESS_SUBNET" --region="$REGION" \
    --project="$PROJECT" --format='value[separator=" "](network.basename(),ipCidrRange)')"
  [[ -n "$range" ]] || die "subnet $EGRESS_SUBNET in $REGION has no range (does it exist?)"
  if exists gcloud compute firewall-rules describe "$HEALTH_FIREWALL_RULE" --project="$PROJECT"; then
    run gcloud compute firewall-rules update "$HEALTH_FIREWALL_RULE" --project="$PROJECT" \
      --rules="$rules" --source-ranges="$range" --target-service-accounts="$IRIS_VM_SERVICE_ACCOUNT"
  else
    run gcloud compute firewall-rules create "$HEALTH_FIREWALL_RULE" --project="$PROJECT" \
      --network="$network" --direction=INGRESS --action=ALLOW --rules="$rules" \
      --source-ranges="$range" --target-service-accounts="$IRIS_VM_SERVICE_ACCOUNT" \
      --description="mirror-vip: the function's health probes (Direct VPC egress from $EGRESS_SUBNET)"
  fi
  run gcloud run services update "$FUNCTION_NAME" --project="$PROJECT" --region="$REGION" \
    --network="$network" --subnet="$EGRESS_SUBNET" --vpc-egress=private-ranges-only --quiet
}

# The Pub/Sub subscription of the function's Eventarc trigger, which the function deployment owns.
trigger_subscription() {
  local trigger subscription
  trigger="$(read_value DRY_RUN_TRIGGER gcloud functions describe "$FUNCTION_NAME" --gen2 \
    --project="$PROJECT" --region="$REGION" --format='value(eventTrigger.trigger)')"
  [[ -n "$trigger" ]] || die "function $FUNCTION_NAME has no Eventarc trigger (deploy it first)"
  subscription="$(read_value DRY_RUN_TRIGGER_SUBSCRIPTION gcloud eventarc triggers describe \
    "$trigger" --project="$PROJECT" --location="$REGION" \
    --format='value(transport.pubsub.subscription)')"
  [[ -n "$subscription" ]] || die "trigger $trigger has no Pub/Sub subscription"
  echo "$subscription"
}

step_deadletter() {
  require REGION
  say "dead-letter policy on the trigger's subscription"
  local subscription number agent
  subscription="$(trigger_subscription)"
  number="$(read_value DRY_RUN_PROJECT_NUMBER gcloud projects describe "$PROJECT" \
    --format='value(projectNumber)')"
  agent="serviceAccount:service-${number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Pub/Sub's own service agent forwards undeliverable messages: it must publish to the DLQ topic
  # and acknowledge on the source subscription.
  run gcloud pubsub topics add-iam-policy-binding "$DEAD_LETTER_TOPIC" --project="$PROJECT" \
    --member="$agent" --role=roles/pubsub.publisher
  run gcloud pubsub subscriptions add-iam-policy-binding "$subscription" --project="$PROJECT" \
    --member="$agent" --role=roles/pubsub.subscriber
  run gcloud pubsub subscriptions update "$subscription" --project="$PROJECT" \
    --dead-letter-topic="$DLQ_TOPIC_PATH" --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
}

notification_channel() {
  if [[ -n "$NOTIFICATION_CHANNEL" ]]; then
    echo "$NOTIFICATION_CHANNEL"
    return
  fi
  [[ -n "$ALERT_EMAIL" ]] || die "NOTIFICATION_CHANNEL or ALERT_EMAIL is required"
  local channel
  channel="$(read_value "" gcloud beta monitoring channels list --project="$PROJECT" \
    --filter="type=\"email\" AND labels.email_address=\"${ALERT_EMAIL}\"" \
    --format='value(name)' --limit=1)"
  if [[ -z "$channel" ]]; then
    channel="$(read_value DRY_RUN_CHANNEL gcloud beta monitoring channels create \
      --project="$PROJECT" --display-name="mirror-vip alerts (${ALERT_EMAIL})" --type=email \
      --channel-labels="email_address=${ALERT_EMAIL}" --user-labels="$MANAGED_LABEL" \
      --format='value(name)')"
  fi
  echo "$channel"
}

step_monitoring() {
  say "log-based metrics, dashboard and alert policies"
  local file metric existing channel policy display
  for file in deploy/gcp/metrics/*.yaml; do
    metric="$(basename "$file" .yaml)"
    if exists gcloud logging metrics describe "$metric" --project="$PROJECT"; then
      run gcloud logging metrics update "$metric" --project="$PROJECT" --config-from-file="$file"
    else
      run gcloud logging metrics create "$metric" --project="$PROJECT" --config-from-file="$file"
    fi
  done

  render deploy/gcp/dashboard.json "$BUILD_DIR/dashboard.json" \
    "DEAD_LETTER_SUBSCRIPTION=$DEAD_LETTER_SUBSCRIPTION" "PROJECT=$PROJECT"
  existing="$(read_value "" gcloud monitoring dashboards list --project="$PROJECT" \
    --filter="displayName=\"${DASHBOARD_NAME}\"" --format='value(name)' --limit=1)"
  if [[ -n "$existing" ]]; then
    run gcloud monitoring dashboards update "$existing" --project="$PROJECT" \
      --config-from-file="$BUILD_DIR/dashboard.json"
  else
    run gcloud monitoring dashboards create --project="$PROJECT" \
      --config-from-file="$BUILD_DIR/dashboard.json"
  fi

  channel="$(notification_channel)"
  for file in deploy/gcp/alerts/*.yaml; do
    policy="$BUILD_DIR/alert-$(basename "$file")"
    # NOTICE_CHANNEL: where notifications that are not pages go (every move); default: the same.
    render "$file" "$policy" "DEAD_LETTER_SUBSCRIPTION=$DEAD_LETTER_SUBSCRIPTION" \
      "NOTIFICATION_CHANNEL=$channel" "NOTICE_CHANNEL=${NOTICE_CHANNEL:-$channel}" \
      "MOVE_BURST_MOVES=$MOVE_BURST_MOVES" "MOVE_BURST_WINDOW=$((MOVE_BURST_MINUTES * 60))s"
    display="$(sed -n 's/^displayName: "\(.*\)"$/\1/p' "$file")"
    existing="$(read_value "" gcloud alpha monitoring policies list --project="$PROJECT" \
      --filter="displayName=\"${display}\"" --format='value(name)' --limit=1)"
    if [[ -n "$existing" ]]; then
      run gcloud alpha monitoring policies update "$existing" --project="$PROJECT" \
        --policy-from-file="$policy"
    else
      run gcloud alpha monitoring policies create --project="$PROJECT" --policy-from-file="$policy"
    fi
  done
}

# Delete, if it exists: delete_if DESCRIBE... -- DELETE...
delete_if() {
  local describe=()
  while [[ "$1" != "--" ]]; do describe+=("$1"); shift; done
  shift
  if exists "${describe[@]}"; then run "$@"; fi
}

step_teardown() {
  require REGION
  say "removing everything deploy.sh created"
  DRY_RUN_EXISTS=0
  local file display name deleted plan id
  for file in deploy/gcp/alerts/*.yaml; do
    display="$(sed -n 's/^displayName: "\(.*\)"$/\1/p' "$file")"
    for name in $(read_value DRY_RUN_POLICY gcloud alpha monitoring policies list --project="$PROJECT" \
      --filter="displayName=\"${display}\"" --format='value(name)'); do
      run gcloud alpha monitoring policies delete "$name" --project="$PROJECT" --quiet
    done
  done
  for name in $(read_value DRY_RUN_CHANNEL gcloud beta monitoring channels list --project="$PROJECT" \
    --filter="userLabels.managed-by=\"mirror-vip\"" --format='value(name)'); do
    run gcloud beta monitoring channels delete "$name" --project="$PROJECT" --force --quiet
  done
  for name in $(read_value DRY_RUN_DASHBOARD gcloud monitoring dashboards list --project="$PROJECT" \
    --filter="displayName=\"${DASHBOARD_NAME}\"" --format='value(name)'); do
    run gcloud monitoring dashboards delete "$name" --project="$PROJECT" --quiet
  done
  for file in deploy/gcp/metrics/*.yaml; do
    name="$(basename "$file" .yaml)"
    delete_if gcloud logging metrics describe "$name" --project="$PROJECT" -- \
      gcloud logging metrics delete "$name" --project="$PROJECT" --quiet
  done

  # Deleting the function deletes its Eventarc trigger and the trigger's subscription.
  delete_if gcloud functions describe "$FUNCTION_NAME" --gen2 --project="$PROJECT" --region="$REGION" -- \
    gcloud functions delete "$FUNCTION_NAME" --gen2 --project="$PROJECT" --region="$REGION" --quiet

  delete_if gcloud pubsub subscriptions describe "$DEAD_LETTER_SUBSCRIPTION" --project="$PROJECT" -- \
    gcloud pubsub subscriptions delete "$DEAD_LETTER_SUBSCRIPTION" --project="$PROJECT" --quiet
  delete_if gcloud pubsub topics describe "$DEAD_LETTER_TOPIC" --project="$PROJECT" -- \
    gcloud pubsub topics delete "$DEAD_LETTER_TOPIC" --project="$PROJECT" --quiet
  # The topic's IAM policy (the IRIS VMs' publisher grant) goes with the topic.
  delete_if gcloud pubsub topics describe "$TOPIC" --project="$PROJECT" -- \
    gcloud pubsub topics delete "$TOPIC" --project="$PROJECT" --quiet

  delete_if gcloud compute firewall-rules describe "$HEALTH_FIREWALL_RULE" --project="$PROJECT" -- \
    gcloud compute firewall-rules delete "$HEALTH_FIREWALL_RULE" --project="$PROJECT" --quiet

  # Bindings first, so no "deleted:serviceAccount:..." members are left behind. The function's
  # are those of the current mirror config: a member removed from it since keeps its binding.
  plan="$(function_iam_plan)"
  function_bindings remove "$plan"
  build_sa_bindings remove
  apply_binding remove "roles/eventarc.eventReceiver to $TRIGGER_SA" gcloud projects \
    remove-iam-policy-binding "$PROJECT" --member="serviceAccount:${TRIGGER_SA}" \
    --role=roles/eventarc.eventReceiver --condition=None --quiet
  retire_project_wide_role
  for name in "$FUNCTION_SA" "$TRIGGER_SA" "$BUILD_SA"; do
    delete_if gcloud iam service-accounts describe "$name" --project="$PROJECT" -- \
      gcloud iam service-accounts delete "$name" --project="$PROJECT" --quiet
  done
  # A deleted custom role can be undeleted for 7 days; deploy.sh does so when re-run.
  while read -r _ id _; do
    if probe deleted gcloud iam roles describe "$id" --project="$PROJECT" \
      --format='value(deleted)' && [[ "$deleted" != "True" ]]; then
      run gcloud iam roles delete "$id" --project="$PROJECT" --quiet
    fi
  done < <(grep '^role ' <<<"$plan")
}

for step in "${STEPS[@]}"; do
  "step_$step"
done
((DRY_RUN)) || say "done: ${STEPS[*]}"
