//! Edge facts in policies: refused at load without their data, read once per request with it.

use super::*;
use crate::load::parse::Policy;
use crate::run::engine::Engine;
use crate::secrets::LoadEnv;
use crate::testutil::{req, run};
use crate::user_agent::user_agents;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An edge's databases for 203.0.113.0/24, counting the lookups made.
#[derive(Default)]
struct Fixed {
    lookups: AtomicUsize,
}

impl IpIntel for Fixed {
    fn supplies(&self) -> IpSupplies {
        IpSupplies {
            geo: true,
            asn: true,
            categories: true,
        }
    }

    fn geo(&self, ip: IpAddr) -> Option<Geo> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let in_range = ip.to_string().starts_with("203.0.113.");
        in_range.then(|| Geo {
            location: Location {
                city: "Lyon".into(),
                country: "France".into(),
                country_code: "FR".into(),
                continent: "Europe".into(),
                is_eu: true,
                latitude: "45.75".into(),
                radius: "20".into(),
                ..Location::default()
            },
            registered: Location {
                country_code: "DE".into(),
                ..Location::default()
            },
        })
    }

    fn asn(&self, _ip: IpAddr) -> Option<AsInfo> {
        Some(AsInfo {
            number: 64500,
            organization: "Example Net".into(),
        })
    }

    fn categories(&self, ip: IpAddr) -> Vec<String> {
        if ip.to_string().starts_with("203.0.113.") {
            vec!["office".into()]
        } else {
            Vec::new()
        }
    }
}

fn engine_with(yaml: &str, facts: Arc<EdgeFacts>) -> Engine {
    match Policy::parse_with(
        yaml,
        "test.yml",
        &LoadEnv::default().with_supplies(facts.supplies()),
    ) {
        Ok(p) => Engine::new(vec![p]).with_edge_facts(facts),
        Err(e) => panic!("policy should compile:\n{e}"),
    }
}

fn deny_when(expr: &str) -> String {
    format!("on_http_request:\n  - expressions: [\"{expr}\"]\n    actions: [{{type: deny}}]\n")
}

#[test]
fn each_fact_is_refused_at_load_without_its_data_naming_the_setting() {
    let none = Supplies {
        ip: IpSupplies::default(),
        user_agent: false,
    };
    for (expr, setting) in [
        ("conn.geo.country_code == 'FR'", "facts.geoip_city"),
        (
            "conn.client_ip.geo.registered_location.is_eu",
            "facts.geoip_city",
        ),
        ("conn.client_ip.as.number == 64500", "facts.geoip_asn"),
        (
            "'office' in conn.client_ip.categories",
            "facts.ip_categories",
        ),
        ("req.user_agent.is_bot", "facts.user_agent_regexes"),
    ] {
        let err = Policy::parse_with(
            &deny_when(expr),
            "test.yml",
            &LoadEnv::default().with_supplies(none),
        )
        .expect_err(expr)
        .to_string();
        let var = expr
            .split([' ', '\''])
            .find(|w| w.contains('.'))
            .unwrap_or_default();
        assert_eq!(
            err,
            format!(
                "test.yml:2:19: on_http_request[0].expressions[0]: in CEL expression `{expr}`: \
                 `{var}` needs data this edge does not have: set `{setting}` in edge.yaml"
            )
        );
    }
    // In an action's template too, located at its field.
    let templated = "on_http_request:\n  - actions:\n      - type: custom-response\n        config: {body: \"from ${conn.geo.city}\"}\n";
    let err = Policy::parse_with(
        templated,
        "test.yml",
        &LoadEnv::default().with_supplies(none),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("test.yml:4:"), "{err}");
    assert!(err.contains("set `facts.geoip_city` in edge.yaml"), "{err}");
    // What needs nothing stays allowed, and so does everything for a check that cannot know
    // the edge (the agent's).
    Policy::parse_with(
        &deny_when("conn.server_region == 'local'"),
        "t",
        &LoadEnv::default().with_supplies(none),
    )
    .unwrap();
    Policy::parse(&deny_when("conn.geo.city == 'Lyon'"), "t").unwrap();
}

#[test]
fn ip_facts_are_answered_and_looked_up_once_per_request() {
    let intel = Arc::new(Fixed::default());
    let facts = Arc::new(EdgeFacts {
        region: "eu-west".into(),
        user_agents: None,
        ip: Some(intel.clone()),
    });
    let yaml = deny_when(
        "conn.geo.country_code == 'FR' && conn.client_ip.geo.location.city == 'Lyon' \
         && conn.geo.latitude == '45.75' && conn.geo.radius == '20' \
         && conn.client_ip.geo.location.is_eu && conn.client_ip.geo.registered_location.country_code == 'DE' \
         && conn.client_ip.as.number == 64500 && conn.client_ip.as.organization == 'Example Net' \
         && 'office' in conn.client_ip.categories && conn.server_region == 'eu-west'",
    );
    let engine = engine_with(&yaml, facts);
    let hit = run(&engine, req("GET /", &[]), "203.0.113.9");
    assert_eq!(hit.res.status(), 403, "{:?}", hit.st.errors());
    assert_eq!(
        intel.lookups.load(Ordering::SeqCst),
        1,
        "one geo lookup per request"
    );
    let miss = run(&engine, req("GET /", &[]), "198.51.100.1");
    assert_eq!(miss.res.status(), 200);
    // Without an entry the fields are empty, not errors.
    let empty = engine_with(
        &deny_when("conn.geo.city == '' && !conn.client_ip.geo.location.is_eu"),
        Arc::new(EdgeFacts {
            ip: Some(intel),
            ..EdgeFacts::default()
        }),
    );
    let res = run(&empty, req("GET /", &[]), "198.51.100.1");
    assert_eq!(res.res.status(), 403, "{:?}", res.st.errors());
}

#[test]
fn user_agent_fields_come_from_the_parser() {
    let facts = Arc::new(EdgeFacts {
        user_agents: Some(user_agents()),
        ..EdgeFacts::default()
    });
    let engine = engine_with(
        &deny_when(
            "req.user_agent.is_bot && req.user_agent.name == 'Googlebot' \
             && req.user_agent.url == 'http://www.google.com/bot.html' && !req.user_agent.is_desktop",
        ),
        facts.clone(),
    );
    let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let res = run(&engine, req("GET /", &[("user-agent", bot)]), "1.1.1.1");
    assert_eq!(res.res.status(), 403, "{:?}", res.st.errors());
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
    let res = run(&engine, req("GET /", &[("user-agent", firefox)]), "1.1.1.1");
    assert_eq!(res.res.status(), 200);
    let desktop = engine_with(
        &deny_when(
            "req.user_agent.is_desktop && req.user_agent.name == 'Firefox' \
             && req.user_agent.version == '121.0' && req.user_agent.os == 'Linux' \
             && !req.user_agent.is_tablet && !req.user_agent.is_mobile",
        ),
        facts,
    );
    let res = run(
        &desktop,
        req("GET /", &[("user-agent", firefox)]),
        "1.1.1.1",
    );
    assert_eq!(res.res.status(), 403, "{:?}", res.st.errors());
}
