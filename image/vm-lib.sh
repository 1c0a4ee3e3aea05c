# image/vm-lib.sh: booting the appliance under QEMU, for image/test and
# image/upgrade-test (sourced, not run). The VM runs on throw-away overlays of the
# images, so an image is never written; its KMIP and SSH ports are forwarded to
# 127.0.0.1 only. KEYWARD_QEMU_ACCEL=kvm uses KVM instead of software emulation
# (TCG, the default, which works everywhere, CI machines without nested
# virtualization included).

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { echo "$(basename "$0"): FAIL: $*" >&2; exit 1; }

# Installs what the tests need when it is missing (as root), and finds PyKMIP's venv.
vm_tools() {
    if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null; then
        [ "$(id -u)" -eq 0 ] || die "install qemu-system-x86 and qemu-utils"
        log "installing qemu-system-x86 qemu-utils"
        apt-get update -qq
        # qemu-system-x86 needs qemu-utils of its own version. A machine that has
        # qemu-utils from another suite (a backport, installed without its source)
        # would make apt refuse ("held broken packages"): take both at the version
        # the configured sources offer for qemu-system-x86, downgrading if needed.
        local version
        version=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
        [ -n "$version" ] && [ "$version" != "(none)" ] || die "no qemu-system-x86 in the package sources"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
            "qemu-system-x86=$version" "qemu-utils=$version" >/dev/null
    fi
    if ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
        [ "$(id -u)" -eq 0 ] || die "install openssh-client"
        log "installing openssh-client"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-client >/dev/null
    fi
    if [ ! -f /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ]; then
        [ "$(id -u)" -eq 0 ] || die "install ovmf (UEFI firmware for QEMU)"
        log "installing ovmf"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ovmf >/dev/null
    fi
    command -v openssl >/dev/null || die "openssl is needed"
    # PyKMIP runs from the checkout's virtual environment (scripts/pyvenv), never
    # from the system Python (Debian's refuses pip installs).
    python=$("$repo/scripts/pyvenv")
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A client key and self-signed certificate: $work/NAME.key, $work/NAME.pem.
client_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -sha256 \
        -keyout "$work/$1.key" -out "$work/$1.pem" -subj "/CN=$1" \
        -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
        -addext "extendedKeyUsage=clientAuth" 2>/dev/null
}

# An OVF environment document with the given properties, as vSphere hands it over:
#   ovf_env OUT key=value ... (a value @FILE is the file's content)
ovf_env() {
    local out=$1
    shift
    python3 - "$@" > "$out" <<'PY'
import sys
from xml.sax.saxutils import quoteattr
print('<?xml version="1.0" encoding="UTF-8"?>')
print('<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" '
      'xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" oe:id="">')
print('  <PlatformSection><Kind>QEMU</Kind></PlatformSection>')
print('  <PropertySection>')
for arg in sys.argv[1:]:
    key, value = arg.split("=", 1)
    if value.startswith("@"):
        value = open(value[1:]).read().strip()
    print('    <Property oe:key=%s oe:value=%s/>' % (quoteattr(key), quoteattr(value)))
print('  </PropertySection>')
print('</Environment>')
PY
}

# QEMU arguments for UEFI firmware with Secure Boot enforced and Microsoft's keys
# enrolled (as VMware's and most machines' firmware ship): OVMF on a q35 machine with
# SMM, its variable store a copy for this VM. Sets the array uefi_secure_boot.
vm_uefi_secure_boot() {
    cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd "$work/$1.vars.fd"
    uefi_secure_boot=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
        -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
        -drive "if=pflash,format=raw,unit=1,file=$work/$1.vars.fd")
}

vm_pids=()
vm_cleanup() {
    local pid
    for pid in "${vm_pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "${KEYWARD_IMAGE_TEST_KEEP:-0}" = 1 ]; then
        echo "$(basename "$0"): kept $work (serial logs, disk overlays)" >&2
    else
        rm -rf "$work"
    fi
}

# Boots the system disk SYSTEM (a qcow2, on a fresh overlay) with the state disk
# STATE_OVERLAY (a qcow2 the caller made; it keeps what the VM writes, from one boot to
# the next). The guest's $guest_ip:$guest_kmip_port and port 22 are forwarded to
# 127.0.0.1:$vm_kmip_port and :$vm_ssh_port. Extra QEMU arguments follow.
#   vm_start NAME SYSTEM STATE_OVERLAY [qemu args...]
vm_start() {
    local name=$1 system=$2 state=$3
    shift 3
    vm_name=$name
    vm_serial=$work/$name.serial.log
    vm_monitor=$work/$name.monitor
    vm_kmip_port=$(free_port)
    vm_ssh_port=$(free_port)
    qemu-img create -q -f qcow2 -F qcow2 -b "$(realpath "$system")" "$work/$name-system.qcow2"
    log "booting $name ($(basename "$system"), ${KEYWARD_QEMU_ACCEL:-tcg}), KMIP on 127.0.0.1:$vm_kmip_port, SSH on :$vm_ssh_port"
    vm_started=$(date +%s)
    qemu-system-x86_64 -accel "${KEYWARD_QEMU_ACCEL:-tcg}" -m 1024 -smp 2 -display none \
        -monitor "unix:$vm_monitor,server,nowait" \
        -device virtio-rng-pci \
        -drive "file=$work/$name-system.qcow2,if=virtio,format=qcow2" \
        -drive "file=$state,if=virtio,format=qcow2" \
        -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$vm_kmip_port-$guest_ip:$guest_kmip_port,hostfwd=tcp:127.0.0.1:$vm_ssh_port-$guest_ip:22" \
        -serial "file:$vm_serial" "$@" &
    vm_pid=$!
    vm_pids+=("$vm_pid")
}

vm_elapsed() { echo $(( $(date +%s) - vm_started )); }
vm_alive() { kill -0 "$vm_pid" 2>/dev/null || die "QEMU exited; serial log:$(tail -n 40 "$vm_serial")"; }
vm_deadline() {
    [ "$(vm_elapsed)" -lt "$timeout_s" ] || die "$1 after ${timeout_s}s; serial log:$(tail -n 60 "$vm_serial")"
}

# Waits for the console banner; the CA it prints goes to $work/$vm_name.ca.pem and the
# console text (CRs removed) to $vm_console.
vm_wait_banner() {
    until grep -q -- '-----END KEYWARD CA BUNDLE-----' "$vm_serial" 2>/dev/null; do
        vm_alive
        vm_deadline "no banner"
        sleep 2
    done
    vm_console=$(tr -d '\r' < "$vm_serial")
    # The CA's lines carry the journal's "firstboot[pid]: " prefix; systemd's own status
    # lines may land between them on the console, so only prefixed lines are kept.
    sed -n '/-----BEGIN KEYWARD CA BUNDLE-----/,/-----END KEYWARD CA BUNDLE-----/p' <<<"$vm_console" |
        grep 'firstboot\[[0-9]*\]: ' | sed 's/^.*firstboot\[[0-9]*\]: //' | grep -v 'KEYWARD CA BUNDLE' \
        > "$work/$vm_name.ca.pem"
    openssl x509 -in "$work/$vm_name.ca.pem" -noout 2>/dev/null || die "the CA on the console is not a certificate"
}

# What the last banner on the console says: the image's version, and the server
# certificate's SHA-256 fingerprint.
vm_banner_version() {
    sed -n 's/^.*keyward KMIP key server appliance \([^ ]*\) (.*$/\1/p' <<<"$vm_console" | tail -n 1
}
vm_server_fingerprint() {
    grep -A1 'Server certificate SHA-256 fingerprint' <<<"$vm_console" | tail -n 1 |
        grep -Eo '([0-9A-F]{2}:){31}[0-9A-F]{2}' || true
}

# keyward's version, from the checkout's Cargo.toml.
keyward_version() { awk -F'"' '/^version = / { print $2; exit }' "$repo/Cargo.toml"; }

# An upgrade: boots the system disk SYSTEM as NAME on STATE_OVERLAY, the state disk the
# VM just powered off ran on. Its banner must name another version than that VM's,
# with the same server certificate and CA; then waits until CLIENT is served.
# Sets upgraded_from to the earlier version.
#   vm_start_upgraded NAME SYSTEM STATE_OVERLAY CLIENT
vm_start_upgraded() {
    local name=$1 system=$2 state=$3 client=$4 from_fingerprint from_ca
    upgraded_from=$(vm_banner_version)
    from_fingerprint=$(vm_server_fingerprint)
    from_ca=$work/$vm_name.ca.pem
    vm_start "$name" "$system" "$state"
    vm_wait_banner
    [ -n "$(vm_banner_version)" ] && [ "$(vm_banner_version)" != "$upgraded_from" ] ||
        die "$name's banner names version \"$(vm_banner_version)\", the earlier image's was \"$upgraded_from\""
    [ "$(vm_server_fingerprint)" = "$from_fingerprint" ] || die "the server certificate changed in the upgrade"
    cmp -s "$from_ca" "$work/$name.ca.pem" || die "the CA changed in the upgrade"
    vm_wait_serving "$client"
}

# Waits until the service completes a TLS handshake with client CLIENT ($work/CLIENT.*).
vm_wait_serving() {
    until python3 - "$vm_kmip_port" "$work/$vm_name.ca.pem" "$work/$1.pem" "$work/$1.key" 2>/dev/null <<'PY'
import socket, ssl, sys
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(ca)
ctx.load_cert_chain(cert, key)
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw) as tls:
        sys.exit(0 if tls.version() else 1)
PY
    do
        vm_alive
        vm_deadline "service not reachable"
        sleep 3
    done
}

# Presses the VM's power button (again every 30 s, in case the guest was not listening
# yet) and waits for it to shut down cleanly.
vm_press_power_button() {
    python3 - "$vm_monitor" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
def prompt():
    seen = b""
    while not seen.endswith(b"(qemu) "):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("the QEMU monitor closed")
        seen += chunk
prompt()
s.sendall(b"system_powerdown\n")
prompt()  # the command was read and run
PY
}

vm_powerdown() {
    vm_press_power_button || die "cannot reach $vm_name's QEMU monitor"
    local waited=0 status=0
    while kill -0 "$vm_pid" 2>/dev/null; do
        [ "$waited" -lt 180 ] || die "$vm_name did not power off within 180 s; serial log:$(tail -n 30 "$vm_serial")"
        sleep 2
        waited=$((waited + 2))
        if [ $((waited % 30)) -eq 0 ] && kill -0 "$vm_pid" 2>/dev/null; then
            vm_press_power_button 2>/dev/null || true
        fi
    done
    wait "$vm_pid" 2>/dev/null || status=$?
    # QEMU exits 0 when the guest powers itself off; anything else means it was stopped.
    [ "$status" -eq 0 ] && tr -d '\r' < "$vm_serial" | grep -q 'reboot: Power down' ||
        die "$vm_name did not power off by itself (QEMU status $status); serial log:$(tail -n 30 "$vm_serial")"
    log "$vm_name powered off cleanly after ${waited}s"
}
