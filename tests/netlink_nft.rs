//! The nftables backend against the real kernel, each test in a network namespace of its
//! own. Needs root; `nft` (package nftables) only inspects, or plays the user.

#[path = "netlink_nft/mss.rs"]
mod mss;
#[path = "netlink_nft/support.rs"]
mod support;

use std::net::IpAddr;

use routevpn::apply::diff::Change;
use routevpn::apply::kernel::{Egress, Kernel, KernelError, Scope};
use routevpn::apply::netlink::nft::Nft;
use routevpn::apply::netlink::Backend;
use routevpn::apply::objects::{Object, Owned};
use routevpn::apply::reconcile;
use routevpn::apply::state::State;
use routevpn::plan::{NftFamily, NftRule, NftTable};
use support::*;

fn open() -> Nft {
    Nft::open().expect("netfilter netlink socket")
}

/// Rules in the encodings the example lacks: SNAT with a source prefix, prefixes off byte
/// boundaries, /0 and host prefixes, IPv6, outbound caps, MSS above 255.
fn other_table() -> NftTable {
    let snat =
        |device: Option<&str>, daddr: &str, saddr: Option<&str>, source: &str| NftRule::Snat {
            tunnel: "lab".into(),
            device: device.map(Into::into),
            daddr: daddr.parse().unwrap(),
            saddr: saddr.map(|s| s.parse().unwrap()),
            source: source.parse().unwrap(),
        };
    let cap = |inbound, family, mss| NftRule::MssCap {
        tunnel: "lab".into(),
        device: "lab0".into(),
        inbound,
        family,
        mss,
    };
    table(
        vec![
            snat(
                Some("lab0"),
                "10.2.0.0/20",
                Some("10.16.0.0/12"),
                "10.1.0.1",
            ),
            snat(None, "10.2.0.5/32", None, "10.1.0.1"),
            snat(None, "0.0.0.0/0", Some("192.168.7.0/24"), "192.168.7.1"),
            snat(
                Some("lab0"),
                "2001:db8:1::/64",
                Some("2001:db8::/47"),
                "2001:db8::1",
            ),
            snat(None, "::/0", None, "2001:db8::2"),
            snat(None, "2001:db8:9::9/128", None, "2001:db8::3"),
        ],
        vec![
            cap(false, NftFamily::Ipv4, 1200),
            cap(false, NftFamily::Ipv6, 1180),
            cap(true, NftFamily::Ipv4, 200),
        ],
        vec![NftRule::Accept {
            tunnel: "lab".into(),
            device: "lab0".into(),
            inbound: false,
        }],
    )
}

fn assert_listed_as(table: &NftTable) {
    let listed = nft(&["-y", "list", "table", "inet", &table.name]);
    assert_eq!(normalized(&listed), normalized(&table.to_nft_script()));
}

#[test]
fn example_table_is_listed_as_planned_and_read_back_equal() {
    fresh_netns();
    let mut backend = open();
    assert_eq!(read(&mut backend), None);
    let table = example();
    write(&mut backend, &table).expect("write");
    assert_listed_as(&table);
    assert_eq!(read(&mut backend), Some(table));
}

#[test]
fn other_encodings_are_listed_as_planned_and_read_back_equal() {
    fresh_netns();
    let mut backend = open();
    let table = other_table();
    write(&mut backend, &table).expect("write");
    assert_listed_as(&table);
    assert_eq!(read(&mut backend), Some(table));
}

/// The kernel holds, expression for expression, what `nft -f` makes of `to_nft_script()`.
#[test]
fn expressions_are_those_nft_generates() {
    fresh_netns();
    let mut backend = open();
    for table in [example(), other_table()] {
        write(&mut backend, &table).expect("write");
        let ours = expression_lists();
        let by_nft = within(&new_netns(), || {
            nft_script(&table.to_nft_script());
            expression_lists()
        });
        assert!(ours.len() > 3 * table.chains.len());
        assert_eq!(ours, by_nft);
    }
}

#[test]
fn replacing_is_atomic() {
    fresh_netns();
    let mut backend = open();
    write(&mut backend, &example()).expect("write");
    let other = other_table();
    write(&mut backend, &other).expect("replace");
    assert_eq!(read(&mut backend), Some(other.clone()));
    assert_listed_as(&other);

    // The kernel refuses NAT chains on the forward hook, after everything before it in the
    // batch: the delete and the other chains must not have happened either.
    let mut refused = example();
    refused.chains[2].chain_type = "nat".into();
    let error = write(&mut backend, &refused).expect_err("refused");
    assert!(error.message.contains("not supported"), "{error}");
    assert_eq!(read(&mut backend), Some(other.clone()));
    assert_listed_as(&other);
}

#[test]
fn other_tables_are_untouched() {
    fresh_netns();
    let theirs = "table inet mine {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n\
                  table ip routevpn {\n\tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n\t\tip daddr 192.0.2.1 drop\n\t}\n}\n";
    nft_script(theirs);
    let snapshot = || {
        (
            nft(&["list", "table", "inet", "mine"]),
            nft(&["list", "table", "ip", "routevpn"]),
        )
    };
    let before = snapshot();
    let mut backend = open();
    write(&mut backend, &example()).expect("create");
    assert_eq!(snapshot(), before);
    write(&mut backend, &other_table()).expect("update");
    assert_eq!(snapshot(), before);
    delete(&mut backend, &other_table()).expect("delete");
    assert_eq!(snapshot(), before);
    assert_eq!(read(&mut backend), None);
    let tables = nft(&["list", "tables"]);
    assert_eq!(
        normalized(&tables),
        ["table inet mine", "table ip routevpn"],
        "{tables}"
    );
}

/// Handle of the first rule in `chain` of routevpn's table whose text contains `needle`.
fn handle(chain: &str, needle: &str) -> String {
    let listing = nft(&["-a", "list", "chain", "inet", "routevpn", chain]);
    let line = listing
        .lines()
        .find(|l| l.contains(needle) && l.contains("# handle"))
        .unwrap_or_else(|| panic!("no rule with {needle:?} in {listing}"));
    line.rsplit(' ').next().expect("handle").to_string()
}

#[test]
fn hand_edits_make_read_differ_until_rewritten() {
    fresh_netns();
    let mut backend = open();
    let table = example();
    let edits = [
        "delete rule inet routevpn mss handle HANDLE",
        "add rule inet routevpn forward iifname \"eth9\" accept",
        // Same text as a planned rule, but carrying no record of it.
        "add rule inet routevpn forward iifname \"gre1\" accept",
        "add chain inet routevpn forward { type filter hook forward priority 0; policy drop; }",
        "delete chain inet routevpn postrouting",
        "add chain inet routevpn extra",
        "add table inet routevpn { flags dormant; }",
    ];
    for edit in edits {
        write(&mut backend, &table).expect("write");
        // Handles change with every rewrite.
        let edit = edit.replace("HANDLE", &handle("mss", "maxseg size > 1358"));
        nft_script(&edit);
        let drifted = read(&mut backend).expect("table still there");
        assert_ne!(drifted, table, "after {edit}");
        write(&mut backend, &table).expect("rewrite");
        assert_eq!(
            read(&mut backend),
            Some(table.clone()),
            "after rewriting {edit}"
        );
        assert_listed_as(&table);
    }
    // A table of that name made by someone else is not passed off as routevpn's.
    nft(&["delete", "table", "inet", "routevpn"]);
    nft_script(&table.to_nft_script());
    assert_ne!(read(&mut backend), Some(table));
}

#[test]
fn deleting_removes_the_table_and_tolerates_its_absence() {
    fresh_netns();
    let mut backend = open();
    let table = example();
    write(&mut backend, &table).expect("write");
    delete(&mut backend, &table).expect("delete");
    assert_eq!(read(&mut backend), None);
    assert!(!nft(&["list", "tables"]).contains("routevpn"));
    delete(&mut backend, &table).expect("delete again");
    assert_eq!(read(&mut backend), None);
}

/// Only the nftables backend, to run reconciliation against.
struct NftKernel(Nft);

impl Kernel for NftKernel {
    fn egress(&mut self, remote: IpAddr) -> Result<Egress, KernelError> {
        Err(KernelError::other(
            None,
            format!("no route lookups here ({remote})"),
        ))
    }

    fn read(&mut self, scope: &Scope) -> Result<Vec<Object>, KernelError> {
        let mut out = Vec::new();
        self.0.read(scope, &mut out)?;
        Ok(out)
    }

    fn execute(&mut self, changes: &[Change]) -> Vec<Result<(), KernelError>> {
        let changes: Vec<&Change> = changes.iter().collect();
        self.0.execute(&changes)
    }

    fn sa_status(&mut self) -> Result<Vec<routevpn::apply::status::SaStatus>, KernelError> {
        Ok(Vec::new())
    }
}

#[test]
fn a_second_apply_writes_nothing_and_drift_is_repaired() {
    fresh_netns();
    let mut kernel = NftKernel(open());
    let mut state = State::default();
    let desired = [Owned {
        tunnel: None,
        object: object(&example()),
    }];
    let first = reconcile(&mut kernel, &desired, &mut state).expect("first apply");
    assert_eq!((first.writes, first.created), (1, 1));
    let second = reconcile(&mut kernel, &desired, &mut state).expect("second apply");
    assert_eq!(second.writes, 0, "{:?}", second.log);

    nft(&[
        "delete",
        "rule",
        "inet",
        "routevpn",
        "forward",
        "handle",
        &handle("forward", "oifname \"gre1\""),
    ]);
    let repair = reconcile(&mut kernel, &desired, &mut state).expect("repair");
    assert_eq!((repair.writes, repair.updated), (1, 1));
    assert_eq!(read(&mut kernel.0), Some(example()));
    let teardown = reconcile(&mut kernel, &[], &mut state).expect("teardown");
    assert_eq!(teardown.deleted, 1);
    assert_eq!(read(&mut kernel.0), None);
    assert!(state.owned.is_empty(), "{:?}", state.owned);
}

#[test]
fn mss_of_forwarded_syns_is_clamped() {
    fresh_netns();
    let topology = mss::topology(1300);
    let mut backend = open();
    let mss_only = |rules| table(vec![], rules, vec![]);

    // No table: the SYN keeps what the client offered.
    assert_eq!(topology.syn_mss_at_server(4001), mss::CLIENT_MSS);

    // Leaving through `r-srv`, whose route to the server has MTU 1300: 1300 - 40.
    write(
        &mut backend,
        &mss_only(vec![NftRule::MssToRouteMtu {
            tunnel: "lab".into(),
            device: "r-srv".into(),
        }]),
    )
    .expect("rt mtu table");
    assert_eq!(topology.syn_mss_at_server(4002), 1260);

    // Arriving through `r-cli`, capped for IPv4; the IPv6 cap leaves IPv4 alone.
    let cap = |family, mss| NftRule::MssCap {
        tunnel: "lab".into(),
        device: "r-cli".into(),
        inbound: true,
        family,
        mss,
    };
    write(&mut backend, &mss_only(vec![cap(NftFamily::Ipv4, 1200)])).expect("cap table");
    assert_eq!(topology.syn_mss_at_server(4003), 1200);
    write(&mut backend, &mss_only(vec![cap(NftFamily::Ipv6, 1000)])).expect("v6 cap table");
    assert_eq!(topology.syn_mss_at_server(4004), mss::CLIENT_MSS);

    // A cap above what is offered changes nothing.
    write(&mut backend, &mss_only(vec![cap(NftFamily::Ipv4, 1480)])).expect("high cap table");
    assert_eq!(topology.syn_mss_at_server(4005), mss::CLIENT_MSS);
}

/// A backend that remembers the table in `memo`.
fn open_with_memo(memo: &std::path::Path) -> Nft {
    open().with_memo(memo)
}

/// Replaces the table a memo file records, keeping its generation and namespace.
fn tamper(memo: &std::path::Path, table: &NftTable) -> u64 {
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(memo).expect("memo written")).expect("memo json");
    record["table"] = serde_json::to_value(table).expect("table json");
    std::fs::write(memo, serde_json::to_vec(&record).unwrap()).unwrap();
    record["generation"].as_u64().expect("generation")
}

#[test]
fn the_memo_answers_only_while_nothing_was_committed() {
    fresh_netns();
    let dir = tempfile::tempdir().unwrap();
    let memo = dir.path().join("nftables.json");
    let mut backend = open_with_memo(&memo);
    write(&mut backend, &example()).expect("write");
    assert_eq!(read(&mut backend), Some(example()));

    // At the same generation the memo is believed (a stand-in table proves it was used) ...
    tamper(&memo, &other_table());
    assert_eq!(read(&mut backend), Some(other_table()));
    // ... and any commit in the namespace, even to another table, sends it to the kernel.
    nft(&["add", "table", "ip", "elsewhere"]);
    assert_eq!(read(&mut backend), Some(example()));

    // Hand edits are seen at once.
    nft(&[
        "add", "rule", "inet", "routevpn", "forward", "iifname", "\"eth9\"", "accept",
    ]);
    assert_ne!(read(&mut backend), Some(example()));
    write(&mut backend, &example()).expect("rewrite");
    assert_eq!(read(&mut backend), Some(example()));
    nft(&["delete", "table", "inet", "routevpn"]);
    assert_eq!(read(&mut backend), None);
}

#[test]
fn a_memo_from_another_namespace_is_not_believed() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.json");
    let second = dir.path().join("second.json");
    let (a, b) = (new_netns(), new_netns());
    // The same history in both namespaces, so both memos name the same generation.
    let generation_a = within(&a, || {
        write(&mut open_with_memo(&first), &example()).expect("write in a");
        tamper(&first, &other_table())
    });
    let generation_b = within(&b, || {
        write(&mut open_with_memo(&second), &example()).expect("write in b");
        tamper(&second, &example())
    });
    assert_eq!(
        generation_a, generation_b,
        "the test needs equal generations"
    );
    std::fs::copy(&first, &second).unwrap();
    within(&b, || {
        assert_eq!(read(&mut open_with_memo(&second)), Some(example()))
    });
}
