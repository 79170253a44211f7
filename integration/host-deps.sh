# Sourced by integration/demo and integration/test: the Debian packages a build needs.
# openssl-sys links the system libssl (the fastest MODP implementation measured here);
# nftnl links libnftnl and libmnl.
install_host_deps() {
    local need=()
    for pkg in libssl-dev libnftnl-dev libmnl-dev pkg-config "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}
