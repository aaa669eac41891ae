//! Every policy in tests/fixtures/invalid fails to compile with the messages in its `.expected`
//! sibling: one line per expected error, each a prefix of the error reported at that index.

use sluice_policy::Policy;
use std::path::Path;

const EXPECTED_FIXTURES: usize = 19;

#[test]
fn invalid_policies_fail_with_located_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yml"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), EXPECTED_FIXTURES, "{paths:?}");
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let source = std::fs::read_to_string(&path).expect("fixture");
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{name}: no .expected"));
        let errors = match Policy::parse(&source, &name) {
            Ok(_) => panic!("{name} compiled but should not"),
            Err(e) => e
                .errors()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        };
        let wanted: Vec<&str> = expected.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(errors.len(), wanted.len(), "{name}: got {errors:#?}");
        for (got, want) in errors.iter().zip(&wanted) {
            assert!(got.starts_with(want), "{name}:\n got: {got}\nwant: {want}");
        }
    }
}
