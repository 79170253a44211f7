use super::*;
use proptest::prelude::*;

fn parse(text: &str) -> Result<Section, String> {
    parse_text(Path::new("/t/swanctl.conf"), text, true).map_err(|d| d.to_string())
}

fn get<'a>(root: &'a Section, path: &str) -> &'a Value {
    let mut parts: Vec<&str> = path.split('.').collect();
    let key = parts.pop().unwrap();
    let section = parts.iter().fold(root, |s, name| {
        s.section(name).unwrap_or_else(|| panic!("no {name}"))
    });
    section.value(key).unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn sections_keys_and_values_as_strongswan_reads_them() {
    let text = "# comment\nconnections {\n  a\n  {\n    remote_addrs = 192.0.2.1 # trailing\n\
    proposals = aes256 - sha256 ,  modp2048\n    empty =\n    quoted = \"two\\nlines\" and \"a \\\"q\\\"\"\n\
    multi = \"first\nsecond\"\n    local { id = @a.example }\n  }\n}\n";
    let root = parse(text).unwrap();
    let remote = get(&root, "connections.a.remote_addrs");
    assert_eq!(remote.text, "192.0.2.1");
    assert_eq!((remote.at.line, remote.at.column), (5, 5));
    // Words are joined by one space; commas separate list items.
    assert_eq!(
        get(&root, "connections.a.proposals").text,
        "aes256 - sha256 , modp2048"
    );
    assert_eq!(get(&root, "connections.a.empty").text, "");
    assert_eq!(
        get(&root, "connections.a.quoted").text,
        "two\nlines and a \"q\""
    );
    assert_eq!(get(&root, "connections.a.multi").text, "first\nsecond");
    let id = get(&root, "connections.a.local.id");
    assert_eq!(
        (id.text.as_str(), id.at.line, id.at.column),
        ("@a.example", 11, 13)
    );
}

#[test]
fn repeated_sections_merge_and_later_keys_win() {
    let root = parse("c { a { x = 1\ny = 2 } }\nc { a { x = 3 } b { } }\n").unwrap();
    let c = root.section("c").unwrap();
    let names: Vec<&str> = c.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(get(&root, "c.a.x").text, "3");
    assert_eq!(get(&root, "c.a.x").at.line, 3);
    assert_eq!(get(&root, "c.a.y").text, "2");
}

#[test]
fn malformed_input_is_a_located_error() {
    let cases = [
        (
            "a {\n  b = 1\n",
            "/t/swanctl.conf:1:1: error: section `a` is not closed",
        ),
        (
            "a = 1\n}\n",
            "/t/swanctl.conf:2:1: error: `}` without a section to close",
        ),
        (
            "a {\n  b c = 1\n}\n",
            "/t/swanctl.conf:2:5: error: expected `=` or `{` after `b`",
        ),
        (
            "a = \"open\n",
            "/t/swanctl.conf:1:5: error: unterminated quoted string",
        ),
        (
            "\"k\" = v\n",
            "/t/swanctl.conf:1:1: error: unexpected quoted string: keys are not quoted",
        ),
        ("= v\n", "/t/swanctl.conf:1:1: error: `=` without a key"),
        (
            "x\ny = 1\n",
            "/t/swanctl.conf:1:1: error: `x` is neither `x = value` nor `x {`",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text).unwrap_err(), expected, "{text:?}");
    }
    let refused = parse_text(Path::new("/t/s.conf"), "a {\n include /etc/*\n}\n", false);
    assert_eq!(
        refused.unwrap_err().to_string(),
        "/t/s.conf:2:2: error: `include` is not followed here"
    );
    let deep = "a {".repeat(MAX_DEPTH + 1);
    assert!(parse(&deep).unwrap_err().contains("nested deeper than 64"));
}

#[test]
fn include_is_relative_to_the_including_file_and_globs_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let at = |p: &str| dir.path().join(p);
    std::fs::create_dir_all(at("conf.d/sub")).unwrap();
    std::fs::write(
        at("swanctl.conf"),
        "connections {\n  include conf.d/*.conf\n}\ninclude = a key\n",
    )
    .unwrap();
    std::fs::write(at("conf.d/b.conf"), "b { x = from-b }\n").unwrap();
    std::fs::write(at("conf.d/a.conf"), "a { x = from-a }\ninclude sub/one\n").unwrap();
    std::fs::write(at("conf.d/sub/one"), "b { y = 1 }\n").unwrap();
    std::fs::write(at("conf.d/.hidden.conf"), "broken {\n").unwrap();
    let root = parse_file(&at("swanctl.conf")).unwrap();
    let conns = root.section("connections").unwrap();
    let names: Vec<&str> = conns.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let y = get(&root, "connections.b.y");
    assert_eq!(y.at.file.as_ref(), at("conf.d/sub/one").as_path());
    assert_eq!(get(&root, "include").text, "a key");

    // A named file must exist; a glob may match nothing.
    std::fs::write(
        at("missing.conf"),
        "include nothing/*.conf\ninclude gone.conf\n",
    )
    .unwrap();
    let e = parse_file(&at("missing.conf")).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}:2:1: error: cannot read",
            at("missing.conf").display()
        )),
        "{e}"
    );
    // A loop ends at the depth limit with a located error.
    std::fs::write(at("loop.conf"), "include loop.conf\n").unwrap();
    let e = parse_file(&at("loop.conf")).unwrap_err().to_string();
    assert!(e.contains("includes nested deeper than 16"), "{e}");
}

#[test]
fn glob_classes_and_stars() {
    assert!(glob_match("*.conf", "a.conf"));
    assert!(!glob_match("*.conf", "a.conf~"));
    assert!(glob_match("a*b*c", "aXbYbc"));
    assert!(glob_match("[a-c]?.x", "bz.x"));
    assert!(!glob_match("[!a-c]?.x", "bz.x"));
    assert!(glob_match("[", "["));
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "[a-z{}=#\"\\\\ \t\n,%*\\[\\]]{0,200}") {
        crate::swanctl::check_untrusted(text.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        crate::swanctl::check_untrusted(&bytes);
    }
}
