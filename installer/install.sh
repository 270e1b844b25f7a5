#!/bin/sh
# rtcc-edge installer: the one line a business owner runs.
#
#   curl -fsSL -o rtcc-edge-install.sh https://HUB/install.sh \
#       && sudo sh rtcc-edge-install.sh --hub https://HUB --token TOKEN   (what `rtcc-hub tokens new` prints)
#   sudo ./installer/install.sh --hub https://HUB --token TOKEN        (from a checkout)
#
# It checks the OS (Debian 12, Raspberry Pi OS bookworm, Ubuntu 22.04+; amd64 or arm64), installs
# what it needs with apt, creates the rtcc-edge user, a virtualenv in /opt/rtcc-edge with the
# agent, the configuration in /etc/rtcc-edge, the state in /var/lib/rtcc-edge, the device key;
# enrolls the site with the hub; installs, enables and starts the systemd unit; makes the owner's
# page (its user, HTTPS certificate and unit; started with --owner-page or --owner-page-lan); and
# ends by running camera discovery. Run again, it upgrades in place and keeps the configuration, keys,
# ledger and footage. Any failure stops with one sentence and removes what that run created.
#
# Everything happens inside main(), called on the last line, so a download cut short runs
# nothing. See docs/operations.md for every option and for what lives where.

PROGRAM=rtcc-edge-install
SERVICE_USER=rtcc-edge
OWNER_GROUP=rtcc-edge-owner  # may change sharing, pause, approve (root may too)
UNIT_NAME=rtcc-edge.service
PAGE_USER=rtcc-edge-page  # the owner's page: in rtcc-edge (socket, config) and the owner group
PAGE_UNIT_NAME=rtcc-edge-page.service
PAGE_PORT=8443

OPT=/opt/rtcc-edge
ETC=/etc/rtcc-edge
CONFIG=$ETC/agent.toml  # a link to OWNER_CONFIG
OWNER_CONFIG=$ETC/owner/agent.toml  # the owner (and the owner's page) may change it
PAGE_DIR=$ETC/page  # the owner's page HTTPS certificate and key
STATE=/var/lib/rtcc-edge
STORE=$STATE/store
RUNDIR=/run/rtcc-edge
UNIT_PATH=/etc/systemd/system/$UNIT_NAME
PAGE_UNIT_PATH=/etc/systemd/system/$PAGE_UNIT_NAME
COMMAND_LINK=/usr/local/bin/rtcc-edge  # so that `sudo rtcc-edge ...` is found on the PATH
MANIFEST=$ETC/install-manifest.tsv

usage() {
    cat <<'EOF'
Usage: install.sh [OPTIONS]

Install (or upgrade) the rtcc-edge site agent and enroll it with an RTCC hub.

  --hub URL         the RTCC hub to enroll with (https://...)
  --token TOKEN     the one-time enrollment token (or set RTCC_EDGE_ENROLL_TOKEN)
  --hub-ca FILE     CA certificate of the hub's HTTPS server, when it is not publicly trusted
  --source DIR      install the rtcc-edge checkout in DIR (default: the one this script is in)
  --wheel FILE      install this rtcc-edge wheel
  --python EXE      the Python (3.11+) to build the virtualenv with
  --root DIR        install into a staging directory: every path under DIR, no apt, no
                    systemctl, no useradd; owners are recorded in the manifest instead
  --no-start        enable the unit but do not start it
  --owner-page      serve the owner's web page on this machine (https://127.0.0.1:8443)
  --owner-page-lan  serve the owner's web page to the whole local network, over HTTPS
                    (https://HOSTNAME.local:8443); the end of the install prints the
                    certificate fingerprint to compare on the phone
  --owner-password-file FILE
                    the owner's page password, from the first line of FILE (otherwise it is
                    asked on the terminal, or set later with sudo rtcc-edge owner passwd)
  --no-discover     do not run camera discovery at the end
  --scan CIDR       also probe this address range during discovery (e.g. 192.168.1.0/24)
  --dry-run         print every step, change nothing
  --uninstall       take the site off the RTCC's map, remove the program and the unit;
                    keep configuration, keys, ledger, footage
  --purge           remove everything, footage and ledger included (asks unless --yes)
  --yes             do not ask for confirmation
  -h, --help        this text
EOF
}

# --- output and failure --------------------------------------------------------------------

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROGRAM" "$*" >&2; }

die() {
    printf '%s: %s\n' "$PROGRAM" "$*" >&2
    exit 1
}

# The staged path of a logical one (identical without --root).
p() { printf '%s%s' "$ROOT" "$1"; }

# --- what this run created, for the rollback ------------------------------------------------

WORK=""
CREATED=""      # file listing paths this run created, one per line, in order
USER_CREATED=0  # this run created the service user
OWNER_GROUP_CREATED=0  # this run created the owner group
PAGE_USER_CREATED=0  # this run created the owner's page user
DONE=0

remember() { printf '%s\n' "$1" >>"$CREATED"; }

rollback() {
    if ! [ -s "$CREATED" ] && [ "$USER_CREATED" != 1 ]; then
        return 0
    fi
    say "rolling back what this run created:" >&2
    if [ -s "$CREATED" ]; then
        # Newest first, so a directory goes after what was created inside it.
        sed -n '1!G;h;$p' "$CREATED" | while IFS= read -r path; do
            if [ -e "$path" ] || [ -L "$path" ]; then
                rm -rf -- "$path" && printf '    removed %s\n' "$path" >&2
            fi
        done
    fi
    if [ "$USER_CREATED" = 1 ]; then
        userdel "$SERVICE_USER" >/dev/null 2>&1 && printf '    removed user %s\n' "$SERVICE_USER" >&2
        getent group "$SERVICE_USER" >/dev/null 2>&1 && groupdel "$SERVICE_USER" >/dev/null 2>&1
    fi
    if [ "$PAGE_USER_CREATED" = 1 ]; then
        userdel "$PAGE_USER" >/dev/null 2>&1 && printf '    removed user %s\n' "$PAGE_USER" >&2
        getent group "$PAGE_USER" >/dev/null 2>&1 && groupdel "$PAGE_USER" >/dev/null 2>&1
    fi
    if [ "$OWNER_GROUP_CREATED" = 1 ]; then
        groupdel "$OWNER_GROUP" >/dev/null 2>&1 && printf '    removed group %s\n' "$OWNER_GROUP" >&2
    fi
    if [ -n "$UNIT_WRITTEN" ] && [ "$HAVE_SYSTEMD" = 1 ]; then
        systemctl daemon-reload >/dev/null 2>&1
    fi
}

on_exit() {
    status=$1
    trap - EXIT INT TERM HUP
    if [ "$status" != 0 ] && [ "$DONE" != 1 ] && [ "$DRY_RUN" != 1 ]; then
        rollback
    fi
    [ -n "$WORK" ] && rm -rf -- "$WORK"
    exit "$status"
}

# Run a command that changes the system, or print it under --dry-run.
act() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '    would run: %s\n' "$*"
        return 0
    fi
    "$@"
}

# --- arguments -------------------------------------------------------------------------------

ROOT=""
HUB=""
TOKEN=${RTCC_EDGE_ENROLL_TOKEN:-}
HUB_CA=""
SOURCE=""
WHEEL=""
PYTHON=""
DRY_RUN=0
NO_START=0
NO_DISCOVER=0
SCAN=""
PAGE_LISTEN=""  # set by --owner-page / --owner-page-lan
PASSWORD_FILE=""
MODE=install
PURGE=0
YES=0

need_value() {
    if [ "$#" -lt 2 ] || [ -z "$2" ]; then
        die "$1 needs a value (see --help)"
    fi
}

parse_args() {
    while [ "$#" -gt 0 ]; do
        case $1 in
            --hub) need_value "$@"; HUB=$2; shift ;;
            --token) need_value "$@"; TOKEN=$2; shift ;;
            --hub-ca) need_value "$@"; HUB_CA=$2; shift ;;
            --source) need_value "$@"; SOURCE=$2; shift ;;
            --wheel) need_value "$@"; WHEEL=$2; shift ;;
            --python) need_value "$@"; PYTHON=$2; shift ;;
            --root) need_value "$@"; ROOT=$2; shift ;;
            --scan) need_value "$@"; SCAN=$2; shift ;;
            --no-start) NO_START=1 ;;
            --owner-page) PAGE_LISTEN=127.0.0.1:$PAGE_PORT ;;
            --owner-page-lan) PAGE_LISTEN=0.0.0.0:$PAGE_PORT ;;
            --owner-password-file) need_value "$@"; PASSWORD_FILE=$2; shift ;;
            --no-discover) NO_DISCOVER=1 ;;
            --dry-run) DRY_RUN=1 ;;
            --uninstall) MODE=uninstall ;;
            --purge) MODE=uninstall; PURGE=1 ;;
            --yes|-y) YES=1 ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    [ -z "$SOURCE" ] || [ -z "$WHEEL" ] || die "give --source or --wheel, not both"
    if [ -n "$ROOT" ]; then
        case $ROOT in
            /*) ;;
            *) die "--root must be an absolute path" ;;
        esac
        # The staging root ends up in the unit, the configuration and sed expressions.
        case $ROOT in
            *[!A-Za-z0-9/._-]*) die "--root may only contain letters, digits, / . _ and -" ;;
        esac
        ROOT=${ROOT%/}
        [ "$ROOT" != "" ] || die "--root / is the real system: leave --root out instead"
    fi
    if [ -n "$HUB" ]; then
        case $HUB in
            https://*) ;;
            http://localhost*|http://127.*) ;;
            *) die "--hub must be an https:// URL" ;;
        esac
        case $HUB in
            *[!A-Za-z0-9:/._~%-]*) die "--hub is not a plain URL: $HUB" ;;
        esac
        HUB=${HUB%/}
        [ -n "$TOKEN" ] || die "--hub needs --token (or RTCC_EDGE_ENROLL_TOKEN)"
    fi
    if [ -n "$TOKEN" ]; then
        [ -n "$HUB" ] || die "--token needs --hub"
        case $TOKEN in
            rtcc1_*) ;;
            *) die "that is not an enrollment token (one starts with rtcc1_); check what the RTCC sent" ;;
        esac
        case ${TOKEN#rtcc1_} in
            *[!A-Za-z0-9_-]*) die "that is not an enrollment token (unexpected characters); check what the RTCC sent" ;;
        esac
    fi
    if [ -n "$HUB_CA" ]; then
        [ -r "$HUB_CA" ] || die "--hub-ca $HUB_CA cannot be read"
        HUB_CA=$(cd "$(dirname "$HUB_CA")" && pwd)/$(basename "$HUB_CA")
    fi
    if [ -n "$PASSWORD_FILE" ]; then
        [ -r "$PASSWORD_FILE" ] || die "--owner-password-file $PASSWORD_FILE cannot be read"
    fi
    if [ -n "$SCAN" ]; then
        case $SCAN in
            *[!0-9./]*) die "--scan takes an IPv4 range like 192.168.1.0/24" ;;
        esac
    fi
}

# --- checks --------------------------------------------------------------------------------

HAVE_SYSTEMD=0
UNIT_WRITTEN=""
START_FAILED=0
PAGE_FAILED=0
PAGE_ON=false
PAGE_FINGERPRINT=""
PAGE_ADDRESS=""

check_root() {
    [ -n "$ROOT" ] && return 0
    [ "$DRY_RUN" = 1 ] && return 0
    [ "$(id -u)" = 0 ] || die "this must run as root: use sudo (or --root DIR to stage an install)"
}

os_field() {
    # A field of os-release, without quotes.
    sed -n "s/^$1=//p" "$OS_RELEASE" | head -n 1 | tr -d '"'"'"
}

check_os() {
    OS_RELEASE=/etc/os-release
    if [ -n "$ROOT" ] && [ -r "$ROOT/etc/os-release" ]; then
        OS_RELEASE=$ROOT/etc/os-release
    fi
    [ -r "$OS_RELEASE" ] || die "cannot tell which OS this is ($OS_RELEASE is missing); supported: Debian 12, Raspberry Pi OS bookworm, Ubuntu 22.04 or newer"
    os_id=$(os_field ID)
    os_version=$(os_field VERSION_ID)
    os_codename=$(os_field VERSION_CODENAME)
    os_name=$(os_field PRETTY_NAME)
    supported=0
    case $os_id in
        debian|raspbian)
            case ${os_version%%.*} in
                ''|*[!0-9]*) [ "$os_codename" = bookworm ] && supported=1 ;;
                *) [ "${os_version%%.*}" -ge 12 ] && supported=1 ;;
            esac
            ;;
        ubuntu)
            major=${os_version%%.*}
            case $major in
                ''|*[!0-9]*) ;;
                *) [ "$major" -ge 22 ] && supported=1 ;;
            esac
            ;;
    esac
    [ "$supported" = 1 ] || die "${os_name:-this OS} is not supported: rtcc-edge installs on Debian 12, Raspberry Pi OS bookworm and Ubuntu 22.04 or newer"
    machine=$(uname -m)
    case $machine in
        x86_64|amd64) ARCH=amd64 ;;
        aarch64|arm64) ARCH=arm64 ;;
        *) die "this machine is $machine: rtcc-edge installs on amd64 and arm64 (64-bit Raspberry Pi OS) only" ;;
    esac
    if [ -z "$ROOT" ] && command -v dpkg >/dev/null 2>&1; then
        userland=$(dpkg --print-architecture 2>/dev/null)
        case $userland in
            amd64|arm64|'') ;;
            *) die "this system's packages are $userland: rtcc-edge needs a 64-bit (amd64 or arm64) OS" ;;
        esac
    fi
    UBUNTU_2204=0
    [ "$os_id" = ubuntu ] && [ "$os_version" = 22.04 ] && UBUNTU_2204=1
    note "OS: ${os_name:-$os_id $os_version} ($ARCH)"
}

python_ok() {
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
    if [ -n "$PYTHON" ]; then
        python_ok "$PYTHON" && { printf '%s' "$PYTHON"; return 0; }
        return 1
    fi
    for candidate in python3.13 python3.12 python3.11 python3; do
        exe=$(command -v "$candidate" 2>/dev/null) || continue
        python_ok "$exe" && { printf '%s' "$exe"; return 0; }
    done
    return 1
}

# --- the hub ------------------------------------------------------------------------------

json_message() {
    # The "message" of a hub error answer (the hub's messages hold no double quotes).
    sed -n 's/.*"message": *"\([^"]*\)".*/\1/p'
}

enrolled() {
    grep -q '^broker_url' "$(p "$CONFIG")" 2>/dev/null
}

check_token() {
    [ -n "$HUB" ] || return 0
    if enrolled; then
        note "already enrolled: the token is not needed (rtcc-edge enroll --force enrolls again)"
        return 0
    fi
    step "checking the enrollment token with $HUB"
    if ! command -v curl >/dev/null 2>&1; then
        note "curl is not installed: the token is checked when the site enrolls"
        return 0
    fi
    answer=$WORK/check.json
    code=$(printf '{"token": "%s"}' "$TOKEN" | curl -sS --max-time 30 \
        ${HUB_CA:+--cacert "$HUB_CA"} -H 'Content-Type: application/json' \
        --data-binary @- -o "$answer" -w '%{http_code}' "$HUB/enroll/check" 2>"$WORK/curl.err")
    status=$?
    if [ "$status" != 0 ]; then
        reason=$(sed -n 's/^curl: ([0-9]*) //p' "$WORK/curl.err" | head -n 1)
        case $status in
            35|51|53|54|58|59|60|64|66|77|80|82|83|90|91)
                die "the hub's HTTPS certificate is not trusted here (${reason:-TLS error}); give the hub's CA with --hub-ca FILE" ;;
        esac
        die "cannot reach the hub at $HUB: ${reason:-no answer}"
    fi
    case $code in
        200)
            HUB_SITE=$(sed -n 's/.*"site_id": *"\([^"]*\)".*/\1/p' "$answer")
            note "the token is good: this will be site ${HUB_SITE:-?}"
            ;;
        *)
            message=$(json_message <"$answer")
            die "the hub refused the token: ${message:-HTTP $code}"
            ;;
    esac
}

# --- what to install ---------------------------------------------------------------------

is_checkout() {
    [ -f "$1/pyproject.toml" ] && grep -q '^name = "rtcc-edge"' "$1/pyproject.toml"
}

choose_package() {
    script_dir=""
    case $0 in
        install.sh|*/install.sh) script_dir=$(cd "$(dirname "$0")" 2>/dev/null && pwd) ;;
    esac
    TREE=""
    if [ -n "$WHEEL" ]; then
        [ -f "$WHEEL" ] || die "--wheel $WHEEL does not exist"
        case $WHEEL in
            *.whl) ;;
            *) die "--wheel $WHEEL is not a wheel (.whl)" ;;
        esac
        PACKAGE=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")
    elif [ -n "$SOURCE" ]; then
        [ -d "$SOURCE" ] || die "--source $SOURCE is not a directory"
        SOURCE=$(cd "$SOURCE" && pwd)
        is_checkout "$SOURCE" || die "--source $SOURCE is not an rtcc-edge checkout (no pyproject.toml naming rtcc-edge)"
        PACKAGE=$SOURCE
        TREE=$SOURCE
    elif [ -n "$script_dir" ] && is_checkout "$script_dir/.."; then
        PACKAGE=$(cd "$script_dir/.." && pwd)
        TREE=$PACKAGE
    elif [ -n "$HUB" ]; then
        PACKAGE=hub
    else
        die "nothing to install: run this from an rtcc-edge checkout, or give --source, --wheel or --hub"
    fi
    if [ -z "$TREE" ] && [ -n "$script_dir" ] && [ -f "$script_dir/../systemd/$UNIT_NAME" ]; then
        TREE=$(cd "$script_dir/.." && pwd)
    fi
}

fetch() {
    # fetch URL FILE: from the hub, verified like the token check.
    curl -fsS --max-time 300 ${HUB_CA:+--cacert "$HUB_CA"} -o "$2" "$1" 2>"$WORK/curl.err" \
        || die "cannot download $1 from the hub: $(sed -n 's/^curl: ([0-9]*) //p' "$WORK/curl.err" | head -n 1)"
}

fetch_from_hub() {
    if [ "$PACKAGE" = hub ]; then
        step "downloading the agent from $HUB"
        fetch "$HUB/dist/latest" "$WORK/latest"
        name=$(head -n 1 "$WORK/latest")
        case $name in
            rtcc_edge-*.whl) ;;
            *) die "the hub did not name an rtcc-edge wheel to install" ;;
        esac
        case $name in
            *[!A-Za-z0-9_.+-]*) die "the hub named a strange wheel file: $name" ;;
        esac
        fetch "$HUB/dist/$name" "$WORK/$name"
        PACKAGE=$WORK/$name
    fi
    if [ -n "$TREE" ]; then
        UNIT_TEMPLATE=$TREE/systemd/$UNIT_NAME
        PAGE_UNIT_TEMPLATE=$TREE/systemd/$PAGE_UNIT_NAME
    elif [ -n "$HUB" ]; then
        fetch "$HUB/$UNIT_NAME" "$WORK/unit-template"
        fetch "$HUB/$PAGE_UNIT_NAME" "$WORK/page-unit-template"
        UNIT_TEMPLATE=$WORK/unit-template
        PAGE_UNIT_TEMPLATE=$WORK/page-unit-template
    else
        die "the systemd unit is not beside this installer: run it from a checkout or give --hub"
    fi
    for template in "$UNIT_TEMPLATE" "$PAGE_UNIT_TEMPLATE"; do
        [ -r "$template" ] || die "the systemd unit $template is missing"
        grep -q '^ExecStart=/opt/rtcc-edge/bin/rtcc-edge ' "$template" \
            || die "$template is not an rtcc-edge unit"
    done
}

# --- the manifest: every path the installer manages, with its mode and owners ---------------
# /etc/rtcc-edge/install-manifest.tsv (root-owned: the service cannot change what an uninstall
# reads). Tab-separated: kind (dir, file, user, parent), path as on the target system, mode,
# owner, group, class: program (removed by --uninstall), config, state and footage (kept unless
# --purge). `parent` rows are directories the installer had to create around its own (under a
# staging root: /opt, /etc/systemd/system, ...); they are removed once empty.

MANIFEST_NEW=""

record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" >>"$MANIFEST_NEW"
}

owner_of() {
    # owner_of USER GROUP: the ids to chown to, or nothing under --root.
    [ -z "$ROOT" ] && printf '%s:%s' "$1" "$2"
}

set_owner_mode() {
    # set_owner_mode PATH MODE USER GROUP
    [ "$DRY_RUN" = 1 ] && [ ! -e "$1" ] && return 0
    act chmod "$2" "$1" || die "cannot set the mode of $1"
    ids=$(owner_of "$3" "$4")
    if [ -n "$ids" ]; then
        act chown "$ids" "$1" || die "cannot hand $1 to $ids"
    fi
}

make_dirs() {
    # make_dirs PATH: create PATH and missing parents, remembering the topmost one made.
    [ -d "$1" ] && return 0
    if [ "$DRY_RUN" = 1 ]; then
        note "would create $1"
        return 0
    fi
    top=$1
    while [ ! -d "$(dirname "$top")" ]; do top=$(dirname "$top"); done
    mkdir -p "$1" || die "cannot create $1"
    remember "$top"
    # Every directory made here is recorded, so uninstalling can take away the empty ones
    # (a staging root's /opt, /etc/systemd/system, ...) that exist only because of us.
    made=$1
    while :; do
        logical=${made#"$ROOT"}
        record parent "${logical:-/}" - - - program
        [ "$made" = "$top" ] && break
        made=$(dirname "$made")
    done
}

ensure_dir() {
    # ensure_dir LOGICAL_PATH MODE USER GROUP CLASS
    path=$(p "$1")
    make_dirs "$path"
    set_owner_mode "$path" "$2" "$3" "$4"
    record dir "$1" "$2" "$3" "$4" "$5"
}

put_file() {
    # put_file SOURCE LOGICAL_PATH MODE USER GROUP CLASS: install SOURCE's content.
    path=$(p "$2")
    make_dirs "$(dirname "$path")"
    if [ "$DRY_RUN" = 1 ]; then
        note "would write $path (mode $3, $4:$5)"
    else
        [ -e "$path" ] || remember "$path"
        tmp=$path.rtcc-new
        if ! { cp "$1" "$tmp" && chmod "$3" "$tmp" && mv -f "$tmp" "$path"; }; then
            rm -f "$tmp"
            die "cannot write $path"
        fi
        ids=$(owner_of "$4" "$5")
        [ -z "$ids" ] || chown "$ids" "$path" || die "cannot hand $path to $ids"
    fi
    record file "$2" "$3" "$4" "$5" "$6"
}

keep_file() {
    # keep_file LOGICAL_PATH MODE USER GROUP CLASS: a file some step made; fix mode, record it.
    path=$(p "$1")
    if [ -e "$path" ]; then
        set_owner_mode "$path" "$2" "$3" "$4"
        record file "$1" "$2" "$3" "$4" "$5"
    fi
}

# --- installing ------------------------------------------------------------------------------

install_packages() {
    [ -n "$ROOT" ] && return 0
    missing=""
    command -v curl >/dev/null 2>&1 || missing="$missing curl"
    [ -r /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"
    if ! find_python >/dev/null; then
        if [ "$UBUNTU_2204" = 1 ]; then
            missing="$missing python3.11 python3.11-venv"
        else
            missing="$missing python3 python3-venv"
        fi
    fi
    [ -n "$missing" ] || return 0
    step "installing system packages:$missing"
    act env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        || die "apt-get update failed: check the network and /etc/apt/sources.list"
    # shellcheck disable=SC2086 # a list of package names
    act env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing \
        || die "apt-get could not install$missing"
}

create_user() {
    if [ -n "$ROOT" ]; then
        record user "$SERVICE_USER" - - - created  # would be, on the target
        return 0
    fi
    if getent passwd "$SERVICE_USER" >/dev/null 2>&1; then
        origin=existing
        [ "$PREVIOUS_USER_CREATED" = 1 ] && origin=created
        record user "$SERVICE_USER" - - - "$origin"
        return 0
    fi
    step "creating the system user $SERVICE_USER"
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/bin/false
    act useradd --system --user-group --home-dir "$STATE" --no-create-home \
        --shell "$nologin" --comment "rtcc-edge site agent" "$SERVICE_USER" \
        || die "cannot create the system user $SERVICE_USER"
    [ "$DRY_RUN" = 1 ] || USER_CREATED=1
    record user "$SERVICE_USER" - - - created
}

create_owner_group() {
    # Root and this group's members act as the owner; the service user is never in it.
    if [ -n "$ROOT" ]; then
        record group "$OWNER_GROUP" - - - created  # would be, on the target
        return 0
    fi
    if getent group "$OWNER_GROUP" >/dev/null 2>&1; then
        origin=existing
        created_before group "$OWNER_GROUP" && origin=created
        record group "$OWNER_GROUP" - - - "$origin"
        return 0
    fi
    step "creating the owner group $OWNER_GROUP"
    act groupadd --system "$OWNER_GROUP" || die "cannot create the group $OWNER_GROUP"
    [ "$DRY_RUN" = 1 ] || OWNER_GROUP_CREATED=1
    record group "$OWNER_GROUP" - - - created
}

create_page_user() {
    # The owner's page runs as its own user: in the service's group (the control socket, the
    # configuration) and in the owner group (it acts as the owner), never as the service.
    if [ -n "$ROOT" ]; then
        record user "$PAGE_USER" - - - created  # would be, on the target
        return 0
    fi
    if getent passwd "$PAGE_USER" >/dev/null 2>&1; then
        origin=existing
        created_before user "$PAGE_USER" && origin=created
        act usermod -a -G "$SERVICE_USER,$OWNER_GROUP" "$PAGE_USER" \
            || die "cannot add $PAGE_USER to the groups $SERVICE_USER and $OWNER_GROUP"
        record user "$PAGE_USER" - - - "$origin"
        return 0
    fi
    step "creating the system user $PAGE_USER (the owner's page)"
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/bin/false
    act useradd --system --user-group --home-dir /nonexistent --no-create-home \
        --shell "$nologin" --groups "$SERVICE_USER,$OWNER_GROUP" \
        --comment "rtcc-edge owner's page" "$PAGE_USER" \
        || die "cannot create the system user $PAGE_USER"
    [ "$DRY_RUN" = 1 ] || PAGE_USER_CREATED=1
    record user "$PAGE_USER" - - - created
}

owner_dir() {
    # The owner's choices (sharing changes, pause, approvals): root and the owner group write
    # them, the service only reads (it is "other" here). setgid keeps new files in the group.
    ensure_dir "$ETC/owner" 2775 root "$OWNER_GROUP" config
    legacy=$(p "$STATE")/owner-policy.json
    target=$(p "$ETC")/owner/owner-policy.json
    if [ -f "$legacy" ] && [ ! -e "$target" ]; then
        step "moving the owner's choices out of the service's reach, to $target"
        act mv -f "$legacy" "$target" || die "cannot move $legacy to $target"
    fi
    keep_file "$ETC/owner/owner-policy.json" 0644 root "$OWNER_GROUP" config
}

create_venv() {
    venv=$(p "$OPT")
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        step "upgrading the agent in $venv"
    else
        step "creating the virtualenv $venv"
        python=$(find_python) || die "no Python 3.11 or newer with venv found (install python3-venv, or give --python)"
        note "with $python ($("$python" -c 'import platform; print(platform.python_version())'))"
        make_dirs "$(dirname "$venv")"
        if [ "$DRY_RUN" != 1 ]; then
            [ -e "$venv" ] || remember "$venv"
            "$python" -m venv "$venv" || die "cannot create the virtualenv $venv"
        else
            note "would run: $python -m venv $venv"
        fi
    fi
    note "installing $PACKAGE"
    if [ "$DRY_RUN" = 1 ]; then
        note "would run: $venv/bin/pip install --upgrade $PACKAGE"
    else
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
            "$PACKAGE" >"$WORK/pip.log" 2>&1 || {
            grep -v '^WARNING: Location' "$WORK/pip.log" | tail -n 20 >&2
            die "pip could not install the agent into $venv (its last lines are above)"
        }
        "$venv/bin/rtcc-edge" --version >/dev/null 2>&1 || die "the installed rtcc-edge does not run"
    fi
    record dir "$OPT" 0755 root root program
}

link_command() {
    # /usr/local/bin/rtcc-edge -> the virtualenv's, so the owner types `sudo rtcc-edge discover`
    # (sudo's secure_path includes /usr/local/bin). Never over a file that is not ours.
    link=$(p "$COMMAND_LINK")
    target=$(p "$OPT")/bin/rtcc-edge
    if [ -e "$link" ] && ! [ -L "$link" ]; then
        warn "$link exists and is not rtcc-edge's link: left as it is; the command is $target"
        return 0
    fi
    if [ -L "$link" ] && [ "$(readlink "$link")" != "$target" ]; then
        warn "$link points to $(readlink "$link"): left as it is; the command is $target"
        return 0
    fi
    make_dirs "$(dirname "$link")"
    if [ "$DRY_RUN" = 1 ]; then
        note "would link $link -> $target"
    elif ! [ -L "$link" ]; then
        remember "$link"
        ln -s "$target" "$link" || die "cannot make the link $link"
    fi
    record link "$COMMAND_LINK" - root root program
}

# The store's byte budget and free-space reserve, sized for the disk the store is on (the
# default budget is a guess that may not hold the program's 48 hours, or may not fit the disk).
store_settings() {
    [ "$DRY_RUN" != 1 ] && [ -x "$(p "$OPT")/bin/rtcc-edge" ] || return 1
    rtcc_edge config store-size --store "$(p "$STORE")" 2>"$WORK/size.err"
}

write_config() {
    # The file lives in the owner directory, which root and the owner group (the owner's page
    # too) may write and the service only reads; /etc/rtcc-edge/agent.toml links to it.
    path=$(p "$OWNER_CONFIG")
    link=$(p "$CONFIG")
    if [ -f "$link" ] && ! [ -L "$link" ]; then
        # An earlier install's file in /etc/rtcc-edge, which only root could change.
        [ -e "$path" ] && die "both $link and $path exist: keep the one in use as $path and remove $link"
        step "moving the configuration to $path (where the owner's page can change it)"
        if [ "$DRY_RUN" = 1 ]; then
            note "would move $link to $path and link $link to it"
            record file "$OWNER_CONFIG" 0640 root "$SERVICE_USER" config
            return 0
        fi
        mv "$link" "$path" || die "cannot move $link to $path"
        ln -s owner/agent.toml "$link" || die "cannot link $link to $path"
    fi
    if [ -f "$path" ]; then
        note "keeping the configuration $path"
        set_owner_mode "$path" 0640 root "$SERVICE_USER"
        record file "$OWNER_CONFIG" 0640 root "$SERVICE_USER" config
        config_link
        return 0
    fi
    if sized=$(store_settings); then
        note "store budget: $(printf '%s\n' "$sized" | sed -n 's/^# About //p')"
        case $sized in
            *"Less than"*) note "less than the program's 48 hours for one camera: see [store] in $path" ;;
        esac
    else
        [ "$DRY_RUN" = 1 ] && note "would size the store budget for the disk of $(p "$STORE")"
        sized="# Not sized: \`rtcc-edge config store-size\` prints max_bytes and min_free for this disk."
    fi
    cat >"$WORK/agent.toml" <<EOF
# rtcc-edge agent configuration, written by the installer.
# \`rtcc-edge config example\` prints every setting with its explanation;
# \`rtcc-edge config check\` checks this file.

# Keys, the ledger, the segment index and the footage live here.
state_dir = "$(p "$STATE")"

[site]
# Assigned by the RTCC when this site enrolls (\`rtcc-edge enroll\`; the installer runs it).
id = "unenrolled"
name = "not enrolled yet"
# address = "123 Central Ave NW"
# contact = "owner@example.org"

[control]
socket = "$(p "$RUNDIR")/control.sock"

[log]
level = "info"
format = "auto"

[store]
$sized

# Cameras: run \`rtcc-edge discover\`, then \`rtcc-edge cameras add\` for each camera to record.
EOF
    put_file "$WORK/agent.toml" "$OWNER_CONFIG" 0640 root "$SERVICE_USER" config
    config_link
}

config_link() {
    # /etc/rtcc-edge/agent.toml -> owner/agent.toml (relative: it holds under --root too).
    link=$(p "$CONFIG")
    if [ -L "$link" ] && [ "$(readlink "$link")" != owner/agent.toml ]; then
        die "$link points to $(readlink "$link"), not to owner/agent.toml: remove the link and run this again"
    fi
    if [ "$DRY_RUN" = 1 ]; then
        [ -L "$link" ] || note "would link $link -> owner/agent.toml"
    elif ! [ -L "$link" ]; then
        remember "$link"
        ln -s owner/agent.toml "$link" || die "cannot make the link $link"
    fi
    record link "$CONFIG" - root root config
}

page_setting() {
    # [owner_page] enabled in the configuration: true or false.
    "$(p "$OPT")/bin/python" -c 'import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(str(tomllib.load(f).get("owner_page", {}).get("enabled", False)).lower())' \
        "$(p "$CONFIG")" 2>/dev/null || echo false
}

turn_on_page() {
    # --owner-page / --owner-page-lan: [owner_page] enabled = true and its listen address, edited
    # in place (comments kept, validated before it replaces the file).
    PAGE_ON=false
    if [ -z "$PAGE_LISTEN" ]; then
        [ "$DRY_RUN" = 1 ] || PAGE_ON=$(page_setting)
        return 0
    fi
    PAGE_ON=true
    if [ "$DRY_RUN" = 1 ]; then
        note "would set [owner_page] enabled = true, listen = \"$PAGE_LISTEN\" in $(p "$OWNER_CONFIG")"
        return 0
    fi
    "$(p "$OPT")/bin/python" - "$(p "$CONFIG")" "$PAGE_LISTEN" >"$WORK/page-config.out" 2>&1 <<'PY' \
        || die "cannot turn the owner's page on in $(p "$OWNER_CONFIG"): $(tail -n 1 "$WORK/page-config.out")"
import sys
from pathlib import Path

import tomlkit

from agent.cameras.config_file import replace_config

path, listen = Path(sys.argv[1]), sys.argv[2]
document = tomlkit.parse(path.read_text(encoding="utf-8"))
if "owner_page" not in document:
    document["owner_page"] = tomlkit.table()
page = document["owner_page"]
if page.get("enabled") is not True or page.get("listen") != listen:
    page["enabled"] = True
    page["listen"] = listen
    replace_config(path, tomlkit.dumps(document))
    print("changed")
PY
    if grep -q changed "$WORK/page-config.out"; then
        note "the owner's page is on: [owner_page] listen = \"$PAGE_LISTEN\""
    fi
}

page_certificate() {
    # The owner's page HTTPS certificate: made once, kept on upgrades (its fingerprint is what
    # the owner checked); `rtcc-edge owner cert --renew` makes a new one.
    ensure_dir "$PAGE_DIR" 0755 root root config
    step "the owner's page certificate"
    if [ "$DRY_RUN" = 1 ]; then
        note "would run: rtcc-edge owner cert"
    else
        rtcc_edge owner cert >"$WORK/cert.out" 2>"$WORK/cert.err" \
            || die "cannot make the owner's page certificate: $(tail -n 1 "$WORK/cert.err")"
        if grep -q '^certificate: .* made$' "$WORK/cert.out"; then
            remember "$(p "$PAGE_DIR")/page.key"
            remember "$(p "$PAGE_DIR")/page.crt"
        fi
        PAGE_FINGERPRINT=$(sed -n 's/^fingerprint (SHA-256): //p' "$WORK/cert.out")
        PAGE_ADDRESS=$(sed -n 's/^address: //p' "$WORK/cert.out")
        note "fingerprint (SHA-256) $PAGE_FINGERPRINT"
    fi
    keep_file "$PAGE_DIR/page.crt" 0644 root root config
    keep_file "$PAGE_DIR/page.key" 0640 root "$PAGE_USER" config
}

owner_password() {
    # The password that opens the page: from --owner-password-file, else asked on the terminal
    # when the page is on and none is set yet.
    file=$ETC/owner/page-password
    if [ -n "$PASSWORD_FILE" ]; then
        step "setting the owner's page password"
        if [ "$DRY_RUN" = 1 ]; then
            note "would run: rtcc-edge owner passwd --stdin <$PASSWORD_FILE"
        else
            head -n 1 "$PASSWORD_FILE" | rtcc_edge owner passwd --stdin >"$WORK/passwd.out" 2>&1 \
                || die "cannot set the owner's page password: $(tail -n 1 "$WORK/passwd.out")"
        fi
    elif [ "$PAGE_ON" = true ] && ! [ -f "$(p "$file")" ] && [ "$DRY_RUN" != 1 ]; then
        if [ -r /dev/tty ] && [ -w /dev/tty ] && (: </dev/tty) 2>/dev/null; then
            step "choose the password that opens the owner's page (10 characters or more)"
            rtcc_edge owner passwd </dev/tty >/dev/tty 2>&1 \
                || warn "no password was set: set it with sudo rtcc-edge owner passwd"
        else
            note "no owner's page password yet: set it with sudo rtcc-edge owner passwd"
        fi
    fi
    keep_file "$file" 0640 root "$OWNER_GROUP" config
}

install_unit() {
    # install_unit TEMPLATE NAME PATH
    if [ -n "$ROOT" ]; then
        sed -e "s#/opt/rtcc-edge#$ROOT/opt/rtcc-edge#g" \
            -e "s#/etc/rtcc-edge#$ROOT/etc/rtcc-edge#g" \
            -e "s#/var/lib/rtcc-edge#$ROOT/var/lib/rtcc-edge#g" \
            "$1" >"$WORK/$2" || die "cannot prepare the unit $2"
    else
        cp "$1" "$WORK/$2" || die "cannot prepare the unit $2"
    fi
    step "installing the systemd unit $(p "$3")"
    put_file "$WORK/$2" "$3" 0644 root root program
    UNIT_WRITTEN=1
}

write_unit() {
    install_unit "$UNIT_TEMPLATE" "$UNIT_NAME" "$UNIT_PATH"
    install_unit "$PAGE_UNIT_TEMPLATE" "$PAGE_UNIT_NAME" "$PAGE_UNIT_PATH"
}

rtcc_edge() {
    "$(p "$OPT")/bin/rtcc-edge" --config "$(p "$CONFIG")" "$@"
}

device_key() {
    step "the device key"
    if [ "$DRY_RUN" = 1 ]; then
        note "would create $(p "$STATE")/device.key unless it exists"
    else
        # A key with a wrong mode is refused by every command that loads it: put the promised
        # mode and owner back first, then read it.
        key=$(p "$STATE")/device.key
        if [ -e "$key" ]; then
            set_owner_mode "$key" 0600 "$SERVICE_USER" "$SERVICE_USER"
        fi
        rtcc_edge keys show --json >"$WORK/key.json" 2>"$WORK/key.err" \
            || die "cannot create the device key: $(tail -n 1 "$WORK/key.err")"
        if grep -q '"created": true' "$WORK/key.json"; then
            remember "$(p "$STATE")/device.key"
        fi
        note "thumbprint $(sed -n 's/.*"kid": "\([^"]*\)".*/\1/p' "$WORK/key.json" | head -n 1)"
    fi
    keep_file "$STATE/device.key" 0600 "$SERVICE_USER" "$SERVICE_USER" state
}

enroll() {
    if enrolled; then
        note "enrolled as site $(sed -n 's/^id = "\(.*\)"$/\1/p' "$(p "$CONFIG")" | head -n 1)"
    elif [ -z "$HUB" ]; then
        note "not enrolling (no --hub): the agent records but takes no requests until"
        note "  rtcc-edge enroll --hub URL --token TOKEN"
    elif [ "$DRY_RUN" = 1 ]; then
        step "enrolling with $HUB"
        note "would run: rtcc-edge enroll --hub $HUB --token-file - ${HUB_CA:+--ca $HUB_CA}"
    else
        step "enrolling with $HUB"
        enroll_now
    fi
    for name in ca.pem client.pem rtcc-jwks.json; do
        keep_file "$ETC/$name" 0640 root "$SERVICE_USER" config
    done
    keep_file "$ETC/client.key" 0600 "$SERVICE_USER" "$SERVICE_USER" config
}

enroll_now() {
    user=$SERVICE_USER
    [ -z "$ROOT" ] || user=""
    # The token goes on standard input, never on a command line other users can see.
    if printf '%s\n' "$TOKEN" | RTCC_EDGE_ENROLL_TOKEN="" rtcc_edge enroll --hub "$HUB" \
        --token-file - ${HUB_CA:+--ca "$HUB_CA"} --user "$user" --json \
        >"$WORK/enroll.json" 2>"$WORK/enroll.err"; then
        note "enrolled as site $(sed -n 's/.*"site": "\([^"]*\)".*/\1/p' "$WORK/enroll.json")"
    else
        message=$("$(p "$OPT")/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["message"])' \
            <"$WORK/enroll.json" 2>/dev/null)
        die "enrollment failed: ${message:-$(tail -n 1 "$WORK/enroll.err")}"
    fi
}

start_service() {
    if [ -n "$ROOT" ]; then
        note "staged: not enabling or starting the unit (--root)"
        return 0
    fi
    if [ "$HAVE_SYSTEMD" != 1 ]; then
        warn "systemd is not running here: start the agent with systemctl when it is"
        return 0
    fi
    step "enabling the unit"
    act systemctl daemon-reload || die "systemctl daemon-reload failed"
    act systemctl enable "$UNIT_NAME" >/dev/null 2>&1 || die "cannot enable $UNIT_NAME"
    [ "$NO_START" = 1 ] && { note "not starting it (--no-start)"; return 0; }
    step "starting the agent"
    act systemctl restart "$UNIT_NAME" || START_FAILED=1
    if [ "$DRY_RUN" != 1 ] && [ "$START_FAILED" != 1 ]; then
        systemctl is-active --quiet "$UNIT_NAME" || START_FAILED=1
    fi
    start_page
}

start_page() {
    if [ "$PAGE_ON" != true ]; then
        # Off in the configuration: not running either.
        act systemctl disable --now "$PAGE_UNIT_NAME" >/dev/null 2>&1 || true
        return 0
    fi
    act systemctl enable "$PAGE_UNIT_NAME" >/dev/null 2>&1 || die "cannot enable $PAGE_UNIT_NAME"
    step "starting the owner's page"
    # A restart, so a renewed certificate or a new listen address is taken up.
    act systemctl restart "$PAGE_UNIT_NAME" || PAGE_FAILED=1
    if [ "$DRY_RUN" != 1 ] && [ "$PAGE_FAILED" != 1 ]; then
        systemctl is-active --quiet "$PAGE_UNIT_NAME" || PAGE_FAILED=1
    fi
    if [ "$PAGE_FAILED" = 1 ]; then
        warn "the owner's page did not start; see: journalctl -u rtcc-edge-page -n 50"
    fi
}

page_summary() {
    # The address to open and the fingerprint to compare on the phone.
    if [ "$PAGE_ON" = true ]; then
        say "  owner's page:  $PAGE_ADDRESS"
        say "                 certificate fingerprint (SHA-256):"
        say "                 $PAGE_FINGERPRINT"
        say "                 the browser warns once: accept only if it shows this fingerprint"
        [ -f "$(p "$ETC/owner/page-password")" ] \
            || say "                 set its password first: sudo rtcc-edge owner passwd"
    else
        say "  owner's page:  off (run this again with --owner-page or --owner-page-lan)"
        say "                 certificate fingerprint (SHA-256): $PAGE_FINGERPRINT"
    fi
}

discover() {
    [ "$NO_DISCOVER" = 1 ] && return 0
    step "looking for cameras"
    if [ "$DRY_RUN" = 1 ]; then
        note "would run: rtcc-edge discover ${SCAN:+--scan $SCAN}"
        return 0
    fi
    if ! rtcc_edge discover --help >/dev/null 2>&1; then
        note "this version of the agent has no discovery command"
        return 0
    fi
    rtcc_edge discover ${SCAN:+--scan "$SCAN"} \
        || warn "discovery did not finish; run rtcc-edge discover later"
}

# created_before KIND NAME: the previous run's manifest says this installer created that user or
# group (so an upgrade keeps saying so, and --purge may remove it).
created_before() {
    [ -r "$WORK/previous-manifest" ] && grep -q "^$1	$2	.*	created\$" "$WORK/previous-manifest"
}

read_previous_manifest() {
    PREVIOUS_USER_CREATED=0
    old=$(p "$MANIFEST")
    [ -r "$old" ] || return 0
    cp "$old" "$WORK/previous-manifest" || die "cannot read the install manifest $old"
    if grep -q "^user	$SERVICE_USER	-	-	-	created" "$old"; then
        PREVIOUS_USER_CREATED=1
    fi
    # Directories an earlier run made still count as ours.
    grep '^parent	' "$old" >>"$MANIFEST_NEW"
}

write_manifest() {
    if [ "$DRY_RUN" = 1 ]; then
        note "would write the manifest $(p "$MANIFEST")"
        return 0
    fi
    target=$(p "$MANIFEST")
    if ! {
        {
            printf '# rtcc-edge install manifest: kind, path, mode, owner, group, class\n'
            printf '# root\t%s\n' "${ROOT:-/}"
            # Sorted: the same install gives the same manifest, run after run.
            LC_ALL=C sort -u "$MANIFEST_NEW"
        } >"$target.rtcc-new" && chmod 0640 "$target.rtcc-new" && mv -f "$target.rtcc-new" "$target"
    }; then
        rm -f "$target.rtcc-new"
        die "cannot write the install manifest $target"
    fi
    ids=$(owner_of root "$SERVICE_USER")
    [ -z "$ids" ] || chown "$ids" "$target" || die "cannot hand $target to $ids"
}

give_state_to_service() {
    # Anything the CLI made as root in the state directory (the device key, discovery's cache)
    # must be the service's.
    [ -z "$ROOT" ] || return 0
    act find "$STATE" \( ! -user "$SERVICE_USER" -o ! -group "$SERVICE_USER" \) \
        -exec chown "$SERVICE_USER:$SERVICE_USER" {} +
}

do_install() {
    check_root
    step "checking this machine"
    check_os
    choose_package
    check_token
    fetch_from_hub
    read_previous_manifest
    upgrade=0
    [ -e "$(p "$CONFIG")" ] && upgrade=1
    if [ "$upgrade" = 1 ]; then
        say "Upgrading rtcc-edge in ${ROOT:-/} (configuration, keys, ledger and footage are kept)."
    else
        say "Installing rtcc-edge into ${ROOT:-/}."
    fi
    install_packages
    create_user
    create_owner_group
    create_page_user
    ensure_dir "$ETC" 0750 root "$SERVICE_USER" config
    ensure_dir "$STATE" 0750 "$SERVICE_USER" "$SERVICE_USER" state
    ensure_dir "$STORE" 0750 "$SERVICE_USER" "$SERVICE_USER" footage
    if [ -n "$ROOT" ]; then
        # systemd makes /run/rtcc-edge (RuntimeDirectory=); a staged tree needs its own.
        ensure_dir "$RUNDIR" 0750 "$SERVICE_USER" "$SERVICE_USER" program
    fi
    create_venv
    link_command
    owner_dir
    write_config
    turn_on_page
    page_certificate
    device_key
    write_unit
    enroll
    owner_password
    give_state_to_service || die "cannot hand $STATE to $SERVICE_USER"
    write_manifest
    DONE=1
    start_service
    discover
    give_state_to_service || warn "some files in $STATE are not owned by $SERVICE_USER"
    say ""
    if [ "$DRY_RUN" = 1 ]; then
        say "Dry run: nothing was changed."
    elif [ "$START_FAILED" = 1 ]; then
        die "rtcc-edge is installed but did not start; see: journalctl -u rtcc-edge -n 50"
    else
        say "rtcc-edge is installed."
        say "  configuration: $(p "$CONFIG")   (rtcc-edge config check)"
        say "  cameras:       rtcc-edge discover, then rtcc-edge cameras add"
        [ -n "$ROOT" ] || say "  logs:          journalctl -u rtcc-edge -f"
        page_summary
    fi
}

# --- uninstalling -------------------------------------------------------------------------------

confirm_purge() {
    [ "$PURGE" = 1 ] || return 0
    [ "$YES" = 1 ] && return 0
    [ "$DRY_RUN" = 1 ] && return 0
    if [ -r /dev/tty ] && [ -w /dev/tty ] && (: </dev/tty) 2>/dev/null; then
        printf 'This deletes all recorded footage, the ledger, the keys and the configuration. Type purge to go on: ' >/dev/tty
        read -r answer </dev/tty || answer=""
        [ "$answer" = purge ] || die "not purging (nothing was changed)"
    else
        die "--purge deletes footage and the ledger: add --yes to confirm"
    fi
}

remove() {
    # remove PATH WHAT
    path=$(p "$1")
    if [ -e "$path" ] || [ -L "$path" ]; then
        act rm -rf -- "$path" || die "cannot remove $path"
        [ "$DRY_RUN" = 1 ] || note "removed $2 $path"
    fi
}

remove_parents() {
    # The empty directories the installer made (deepest first); never one that holds anything.
    [ -r "$WORK/previous-manifest" ] || return 0
    ours=$WORK/managed-dirs
    sed -n 's/^dir\t\([^\t]*\)\t.*/\1/p' "$WORK/previous-manifest" >"$ours"
    sed -n 's/^parent\t\([^\t]*\)\t.*/\1/p' "$WORK/previous-manifest" | sort -u -r \
        | while IFS= read -r logical; do
            # What --uninstall keeps (the state and configuration directories) stays.
            grep -qxF "$logical" "$ours" && continue
            path=$(p "$logical")
            [ "$logical" = / ] && path=$ROOT
            if [ -z "$path" ] || [ ! -d "$path" ]; then
                continue
            fi
            if [ "$DRY_RUN" = 1 ]; then
                note "would remove $path if empty"
            else
                rmdir -- "$path" 2>/dev/null || true
            fi
        done
}

keep_manifest_rows() {
    # After --uninstall the manifest lists what is left, for a later --purge.
    [ -r "$WORK/previous-manifest" ] || return 0
    [ "$DRY_RUN" = 1 ] && return 0
    awk -F '\t' '/^#/ || $1 == "user" || $1 == "parent" || $6 != "program"' \
        "$WORK/previous-manifest" >"$WORK/kept-manifest"
    cp "$WORK/kept-manifest" "$(p "$MANIFEST")" || warn "cannot update $(p "$MANIFEST")"
}

retract_site() {
    # Off the RTCC's map before anything is removed: the agent deletes its retained registry
    # and status at the broker. The daemon was stopped just before, so nothing publishes them
    # again (hence --force: a stale control socket must not stop the uninstall).
    enrolled || return 0
    site=$(sed -n 's/^id = "\(.*\)"$/\1/p' "$(p "$CONFIG")" | head -n 1)
    step "taking site $site off the RTCC's map"
    if [ "$DRY_RUN" = 1 ]; then
        note "would run: rtcc-edge retract --force"
        return 0
    fi
    if [ ! -x "$(p "$OPT")/bin/rtcc-edge" ]; then
        note "the program went with an earlier --uninstall, which took the site off the map"
        note "(if it said it could not, ask the RTCC to run: rtcc-hub sites retire $site)"
        return 0
    fi
    if COLUMNS=1000 rtcc_edge retract --force >"$WORK/retract.out" 2>&1; then
        sed 's/^/    /' "$WORK/retract.out"
    else
        # The owner may leave even when the RTCC's broker cannot be reached: said, not fatal.
        warn "$(tail -n 1 "$WORK/retract.out")"
    fi
}

do_uninstall() {
    check_root
    confirm_purge
    read_previous_manifest
    [ -e "$(p "$OPT")" ] || [ -e "$(p "$UNIT_PATH")" ] || [ -e "$(p "$STATE")" ] \
        || [ -e "$(p "$ETC")" ] || die "rtcc-edge is not installed in ${ROOT:-/}"
    step "removing rtcc-edge from ${ROOT:-/}"
    if [ -z "$ROOT" ] && [ "$HAVE_SYSTEMD" = 1 ]; then
        act systemctl disable --now "$PAGE_UNIT_NAME" >/dev/null 2>&1 || true
        act systemctl disable --now "$UNIT_NAME" >/dev/null 2>&1 || true
    fi
    retract_site
    remove "$UNIT_PATH" "the unit"
    remove "$PAGE_UNIT_PATH" "the owner's page unit"
    if [ -z "$ROOT" ] && [ "$HAVE_SYSTEMD" = 1 ]; then
        act systemctl daemon-reload || true
    fi
    link=$(p "$COMMAND_LINK")
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$(p "$OPT")/bin/rtcc-edge" ]; then
        remove "$COMMAND_LINK" "the command"
    fi
    remove "$OPT" "the program"
    remove "$RUNDIR" "the runtime directory"
    remove_parents
    if [ "$PURGE" = 1 ]; then
        remove "$STATE" "keys, ledger and footage:"
        remove "$ETC" "the configuration"
        if [ -z "$ROOT" ] && [ "$PREVIOUS_USER_CREATED" = 1 ] \
            && getent passwd "$SERVICE_USER" >/dev/null 2>&1; then
            act userdel "$SERVICE_USER" || warn "cannot remove the user $SERVICE_USER"
            getent group "$SERVICE_USER" >/dev/null 2>&1 && { act groupdel "$SERVICE_USER" || true; }
            note "removed the user $SERVICE_USER"
        fi
        if [ -z "$ROOT" ] && created_before user "$PAGE_USER" \
            && getent passwd "$PAGE_USER" >/dev/null 2>&1; then
            act userdel "$PAGE_USER" || warn "cannot remove the user $PAGE_USER"
            getent group "$PAGE_USER" >/dev/null 2>&1 && { act groupdel "$PAGE_USER" || true; }
            note "removed the user $PAGE_USER"
        fi
        if [ -z "$ROOT" ] && created_before group "$OWNER_GROUP" \
            && getent group "$OWNER_GROUP" >/dev/null 2>&1; then
            act groupdel "$OWNER_GROUP" || warn "cannot remove the group $OWNER_GROUP"
            note "removed the group $OWNER_GROUP"
        fi
        remove_parents
        say "rtcc-edge is purged."
    else
        keep_manifest_rows
        say "rtcc-edge is removed. Kept: $(p "$ETC") (configuration, certificates) and"
        say "$(p "$STATE") (device key, ledger, footage). --purge removes them too."
    fi
    DONE=1
}

main() {
    parse_args "$@"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/rtcc-edge-install.XXXXXX") || die "cannot make a temporary directory"
    CREATED=$WORK/created
    MANIFEST_NEW=$WORK/manifest
    : >"$CREATED"
    : >"$MANIFEST_NEW"
    trap 'on_exit $?' EXIT
    trap 'exit 130' INT TERM HUP
    umask 022
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && HAVE_SYSTEMD=1
    [ "$DRY_RUN" = 1 ] && say "Dry run: showing each step; nothing will be changed."
    if [ "$MODE" = uninstall ]; then
        do_uninstall
    else
        do_install
    fi
}

main "$@"
