# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_routevpn_global_optspecs
    string join \n config-dir= state-dir= insecure-secrets h/help V/version
end

function __fish_routevpn_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_routevpn_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_routevpn_using_subcommand
    set -l cmd (__fish_routevpn_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c routevpn -n "__fish_routevpn_needs_command" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_needs_command" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_needs_command" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c routevpn -n "__fish_routevpn_needs_command" -s V -l version -d 'Print version'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "check" -d 'Validate profiles; exit non-zero on any error'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "plan" -d 'Print the kernel state and IKE configuration the profiles ask for'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "up" -d 'Bring one tunnel up: through the daemon when it runs (apply, then negotiate and wait for the CHILD SAs), else its dataplane alone (manual keys)'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "down" -d 'Take one tunnel down and remove what routevpn made for it'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "rekey" -d 'Rekey one tunnel\'s CHILD SAs now, through the daemon (new SAs are installed before the old ones go: no packet is lost)'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "apply" -d 'Make the kernel match every profile: create, update and remove tunnels'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "status" -d 'Show every tunnel\'s devices, routes, policies and SAs against the plan, and the daemon\'s IKE and CHILD SAs (like swanctl --list-sas)'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "doctor" -d 'Diagnose why a tunnel\'s packets do not get through: kernel support, sysctls, routes, foreign XFRM policies, nftables drops, MTU, IKE state and counters. Exit code 0: healthy; 1: an error found; 2: doctor could not run'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "daemon" -d 'Run the IKE engine for every profile: apply the dataplane, negotiate, install SAs, answer `up`, `down` and `status` on a unix socket'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "demo" -d 'Show routevpn at work: two sites in network namespaces, a daemon in each, a VTI and a GRE-over-IPsec tunnel negotiated between them, a ping across each, their SAs; then everything is removed. Needs root and a kernel with VTI, GRE and ESP'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "import" -d 'Read swanctl.conf files (with their includes, `secrets` and the swanctl/ directory layout beside them) and write one profile per connection, each pre-shared key into a 0600 file the profile names. Profiles are validated as `check` does before any is written; options routevpn cannot carry over are located errors'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "export" -d 'Print profiles as swanctl.conf: connections and secrets giving charon the same negotiation. Pre-shared keys only with --with-secrets'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "pubkey" -d 'Print our public key for the partner, from the tunnel\'s `private_key`: PEM (strongSwan\'s `pubkeys`) or libreswan\'s `0s…` form (RSA only), as `ipsec showhostkey` prints it for `leftrsasigkey=`'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "version" -d 'Print the version'
complete -c routevpn -n "__fish_routevpn_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c routevpn -n "__fish_routevpn_using_subcommand check" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand check" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand check" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand check" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand plan" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand plan" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand plan" -l json -d 'Machine-readable JSON instead of text'
complete -c routevpn -n "__fish_routevpn_using_subcommand plan" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand plan" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand up" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand up" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand up" -l all -d 'Every tunnel: one apply, then every IKE tunnel negotiated at once; waits for them all (progress on a terminal), at most 60 s'
complete -c routevpn -n "__fish_routevpn_using_subcommand up" -l no-wait -d 'Return once the negotiation has started instead of waiting for its result'
complete -c routevpn -n "__fish_routevpn_using_subcommand up" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand up" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand down" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand down" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand down" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand down" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand rekey" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand rekey" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand rekey" -l ike -d 'Rekey the IKE SA instead (its CHILD SAs move to the new one untouched)'
complete -c routevpn -n "__fish_routevpn_using_subcommand rekey" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand rekey" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand apply" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand apply" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand apply" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand apply" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand status" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand status" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand status" -l json -d 'The IKE and CHILD SAs as JSON (needs the daemon)'
complete -c routevpn -n "__fish_routevpn_using_subcommand status" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand status" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand doctor" -l interval -d 'Seconds between the two counter samples' -r
complete -c routevpn -n "__fish_routevpn_using_subcommand doctor" -l frr-dir -d 'Where FRR\'s vty sockets are, for the OSPF and PIM checks' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand doctor" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand doctor" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand doctor" -l json -d 'Machine-readable JSON (schema in README.md)'
complete -c routevpn -n "__fish_routevpn_using_subcommand doctor" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand daemon" -l ike-port -d 'UDP port for IKE' -r
complete -c routevpn -n "__fish_routevpn_using_subcommand daemon" -l natt-port -d 'UDP port for NAT traversal (IKE and ESP in UDP)' -r
complete -c routevpn -n "__fish_routevpn_using_subcommand daemon" -l metrics -d 'Serve Prometheus metrics at GET /metrics on this TCP address (127.0.0.1:9505) or unix socket (unix:/run/routevpn/metrics.sock). Off by default' -r
complete -c routevpn -n "__fish_routevpn_using_subcommand daemon" -l log-level -d 'Log level (error, warn, info, debug, trace), per module too, like RUST_LOG: "info,ike=debug,apply=warn". Modules: daemon, ike, apply, systemd' -r
complete -c routevpn -n "__fish_routevpn_using_subcommand daemon" -l vici-socket -d 'strongSwan\'s VICI socket, for swanctl and VICI tools [default: /run/routevpn/charon.vici, or charon.vici in --state-dir]' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand daemon" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand daemon" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand daemon" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand daemon" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand demo" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand demo" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand demo" -l keep -d 'Leave the sites, tunnels and daemons running to look around'
complete -c routevpn -n "__fish_routevpn_using_subcommand demo" -l clean -d 'Remove what `demo --keep` (or an interrupted demo) left behind'
complete -c routevpn -n "__fish_routevpn_using_subcommand demo" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand demo" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand import" -l out -d 'Where to write the profiles [default: --config-dir]' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand import" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand import" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand import" -l lenient -d 'Drop options routevpn cannot carry over, with a warning, instead of failing'
complete -c routevpn -n "__fish_routevpn_using_subcommand import" -l dry-run -d 'Validate and print the profiles; write nothing'
complete -c routevpn -n "__fish_routevpn_using_subcommand import" -l force -d 'Replace existing profiles and secret files of the same names'
complete -c routevpn -n "__fish_routevpn_using_subcommand import" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand import" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand export" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand export" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand export" -l with-secrets -d 'Write the pre-shared keys into `secrets` (strongSwan reads no key file)'
complete -c routevpn -n "__fish_routevpn_using_subcommand export" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand export" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand pubkey" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand pubkey" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand pubkey" -l libreswan -d 'libreswan\'s `leftrsasigkey=0s…` line instead of PEM'
complete -c routevpn -n "__fish_routevpn_using_subcommand pubkey" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand pubkey" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand version" -l config-dir -d 'Directory holding the tunnel profiles (*.toml)' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand version" -l state-dir -d 'Where routevpn keeps what it created and the allocated marks / if_ids [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host' -r -F
complete -c routevpn -n "__fish_routevpn_using_subcommand version" -l insecure-secrets -d 'Accept secret files not owned by root or readable by others (test setups only)'
complete -c routevpn -n "__fish_routevpn_using_subcommand version" -s h -l help -d 'Print help'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "check" -d 'Validate profiles; exit non-zero on any error'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "plan" -d 'Print the kernel state and IKE configuration the profiles ask for'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "up" -d 'Bring one tunnel up: through the daemon when it runs (apply, then negotiate and wait for the CHILD SAs), else its dataplane alone (manual keys)'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "down" -d 'Take one tunnel down and remove what routevpn made for it'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "rekey" -d 'Rekey one tunnel\'s CHILD SAs now, through the daemon (new SAs are installed before the old ones go: no packet is lost)'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "apply" -d 'Make the kernel match every profile: create, update and remove tunnels'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "status" -d 'Show every tunnel\'s devices, routes, policies and SAs against the plan, and the daemon\'s IKE and CHILD SAs (like swanctl --list-sas)'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "doctor" -d 'Diagnose why a tunnel\'s packets do not get through: kernel support, sysctls, routes, foreign XFRM policies, nftables drops, MTU, IKE state and counters. Exit code 0: healthy; 1: an error found; 2: doctor could not run'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "daemon" -d 'Run the IKE engine for every profile: apply the dataplane, negotiate, install SAs, answer `up`, `down` and `status` on a unix socket'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "demo" -d 'Show routevpn at work: two sites in network namespaces, a daemon in each, a VTI and a GRE-over-IPsec tunnel negotiated between them, a ping across each, their SAs; then everything is removed. Needs root and a kernel with VTI, GRE and ESP'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "import" -d 'Read swanctl.conf files (with their includes, `secrets` and the swanctl/ directory layout beside them) and write one profile per connection, each pre-shared key into a 0600 file the profile names. Profiles are validated as `check` does before any is written; options routevpn cannot carry over are located errors'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "export" -d 'Print profiles as swanctl.conf: connections and secrets giving charon the same negotiation. Pre-shared keys only with --with-secrets'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "pubkey" -d 'Print our public key for the partner, from the tunnel\'s `private_key`: PEM (strongSwan\'s `pubkeys`) or libreswan\'s `0s…` form (RSA only), as `ipsec showhostkey` prints it for `leftrsasigkey=`'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "version" -d 'Print the version'
complete -c routevpn -n "__fish_routevpn_using_subcommand help; and not __fish_seen_subcommand_from check plan up down rekey apply status doctor daemon demo import export pubkey version help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
