//! What a policy reads beyond the request, through a real edge and agent: the parsed user
//! agent, GeoIP city and ASN databases the test writes itself (loopback is 127.0.0.0/8),
//! operator IP categories and the server region; and each refused at load when the edge lacks
//! its data, and bad data refused at start.

use serde::Serialize;
use sluice_agent::AgentError;
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{client, Launch, TestAgent, TestEdge, TOKEN};
use sluice_edge::{EdgeConfig, RegexesPath, DEFAULT_REGEXES};
use sluice_proto::control::{PolicyKind, PolicySource};
use sluice_proto::error_code::ErrorCode;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Serialize)]
struct Place {
    names: BTreeMap<&'static str, &'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iso_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_in_european_union: Option<bool>,
}

#[derive(Serialize)]
struct Position {
    latitude: f64,
    longitude: f64,
    accuracy_radius: u16,
    time_zone: &'static str,
}

/// A GeoIP2-City record, as GeoLite2 lays it out.
#[derive(Serialize)]
struct CityRecord {
    city: Place,
    continent: Place,
    country: Place,
    registered_country: Place,
    location: Position,
    subdivisions: Vec<Place>,
}

#[derive(Serialize)]
struct AsnRecord {
    autonomous_system_number: u32,
    autonomous_system_organization: &'static str,
}

fn place(en: &'static str, iso: Option<&'static str>, eu: Option<bool>) -> Place {
    Place {
        names: BTreeMap::from([("en", en)]),
        iso_code: iso,
        is_in_european_union: eu,
    }
}

/// Writes a one-network database for 127.0.0.0/8.
fn write_db(path: &Path, database_type: &str, record: &impl Serialize) -> anyhow::Result<()> {
    let mut w = mmdb_writer::Writer::new(database_type);
    w.insert("127.0.0.0/8".parse::<ipnet::IpNet>()?, record)?;
    std::fs::write(path, w.to_bytes()?)?;
    Ok(())
}

/// City, ASN and category files for loopback in `dir`, and the edge settings naming them.
fn ip_data(dir: &Path, config: &mut EdgeConfig) -> anyhow::Result<()> {
    let city = CityRecord {
        city: place("Testville", None, None),
        continent: place("Europe", Some("EU"), None),
        country: place("France", Some("FR"), Some(true)),
        registered_country: place("Germany", Some("DE"), Some(true)),
        location: Position {
            latitude: 45.75,
            longitude: 4.85,
            accuracy_radius: 20,
            time_zone: "Europe/Paris",
        },
        subdivisions: vec![place("Auvergne-Rhone-Alpes", Some("ARA"), None)],
    };
    write_db(&dir.join("city.mmdb"), "GeoLite2-City", &city)?;
    let asn = AsnRecord {
        autonomous_system_number: 64500,
        autonomous_system_organization: "Loopback Networks",
    };
    write_db(&dir.join("asn.mmdb"), "GeoLite2-ASN", &asn)?;
    std::fs::write(dir.join("office.txt"), "# the office\n127.0.0.0/8\n")?;
    std::fs::write(dir.join("vpn.txt"), "10.8.0.0/16 # not loopback\n")?;
    config.facts.geoip_city = Some(dir.join("city.mmdb"));
    config.facts.geoip_asn = Some(dir.join("asn.mmdb"));
    config.facts.ip_categories = vec![
        ("office".into(), dir.join("office.txt")),
        ("vpn".into(), dir.join("vpn.txt")),
    ];
    config.facts.region = "test-1".into();
    Ok(())
}

fn document(text: &str) -> Vec<PolicySource> {
    vec![PolicySource {
        origin: "facts.yml".into(),
        kind: PolicyKind::Document,
        text: text.into(),
    }]
}

/// Sends the variables to the upstream as request headers.
const ECHO_FACTS: &str = r#"on_http_request:
  - expressions: ["req.user_agent.is_bot"]
    actions: [{type: deny, config: {status_code: 418}}]
  - actions:
      - type: add-headers
        config:
          headers:
            x-ua: "${req.user_agent.name} ${req.user_agent.version} on ${req.user_agent.os} ${req.user_agent.os_version}; mobile=${req.user_agent.is_mobile} tablet=${req.user_agent.is_tablet} desktop=${req.user_agent.is_desktop}"
            x-geo: "${conn.geo.city}, ${conn.geo.subdivision}, ${conn.geo.country} (${conn.geo.country_code}) ${conn.geo.latitude},${conn.geo.longitude} r=${conn.geo.radius}"
            x-location: "${conn.client_ip.geo.location.continent} eu=${conn.client_ip.geo.location.is_eu} tz=${conn.client_ip.geo.location.timezone}"
            x-registered: "${conn.client_ip.geo.registered_location.country_code}"
            x-as: "AS${conn.client_ip.as.number} ${conn.client_ip.as.organization}"
            x-categories: "${conn.client_ip.categories.join(',')}"
            x-region: "${conn.server_region}"
"#;

#[tokio::test]
async fn user_agent_geo_asn_categories_and_region_reach_the_policy() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut setup = Ok(());
    let edge = TestEdge::start_with(|c| {
        c.facts.user_agent_regexes = RegexesPath::Given(DEFAULT_REGEXES.into());
        setup = ip_data(dir.path(), c);
    })
    .await?;
    setup?;
    let app = upstream::app("facts").await?;
    let mut config = edge.agent_config(TOKEN, "facts", app.addr);
    config.endpoints[0].policies = document(ECHO_FACTS);
    let agent = TestAgent::start(config).await?;
    let http = client();

    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
    let r = http
        .get(agent.url())
        .header("user-agent", firefox)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let seen = Seen::parse(&r.text().await?)?;
    let header = |name: &str| seen.header(name).unwrap_or_default();
    assert_eq!(
        header("x-ua"),
        "Firefox 121.0 on Linux ; mobile=false tablet=false desktop=true"
    );
    assert_eq!(
        header("x-geo"),
        "Testville, Auvergne-Rhone-Alpes, France (FR) 45.75,4.85 r=20"
    );
    assert_eq!(header("x-location"), "Europe eu=true tz=Europe/Paris");
    assert_eq!(header("x-registered"), "DE");
    assert_eq!(header("x-as"), "AS64500 Loopback Networks");
    assert_eq!(header("x-categories"), "office");
    assert_eq!(header("x-region"), "test-1");

    let ipad = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
    let r = http
        .get(agent.url())
        .header("user-agent", ipad)
        .send()
        .await?;
    let seen = Seen::parse(&r.text().await?)?;
    assert_eq!(
        seen.header("x-ua").unwrap_or_default(),
        "Mobile Safari 16.6 on iOS 16.6; mobile=false tablet=true desktop=false"
    );

    let bot = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";
    let r = http
        .get(agent.url())
        .header("user-agent", bot)
        .send()
        .await?;
    assert_eq!(r.status(), 418, "bots are denied");
    agent.stop().await
}

#[tokio::test]
async fn each_fact_is_refused_at_load_when_the_edge_lacks_its_data() -> anyhow::Result<()> {
    // The test kit's edge has no user-agent data and no IP databases.
    let edge = TestEdge::start().await?;
    let app = upstream::app("nofacts").await?;
    for (expr, setting) in [
        ("req.user_agent.is_bot", "facts.user_agent_regexes"),
        ("conn.geo.country_code == 'FR'", "facts.geoip_city"),
        ("conn.client_ip.as.number == 64500", "facts.geoip_asn"),
        (
            "'office' in conn.client_ip.categories",
            "facts.ip_categories",
        ),
    ] {
        let mut config = edge.agent_config(TOKEN, "nofacts", app.addr);
        config.endpoints[0].policies = document(&format!(
            "on_http_request:\n  - expressions: [\"{expr}\"]\n    actions: [{{type: deny}}]\n"
        ));
        match TestAgent::launch(config).await? {
            Launch::Exited(Err(AgentError::Rejected(r))) => {
                assert_eq!(r.code, ErrorCode::PolicyInvalid);
                assert!(r.message.contains("facts.yml:2:19:"), "{}", r.message);
                assert!(
                    r.message.contains(&format!("set `{setting}` in edge.yaml")),
                    "{}",
                    r.message
                );
            }
            Launch::Exited(other) => anyhow::bail!("{expr}: expected a rejection, got {other:?}"),
            Launch::Online(_) => anyhow::bail!("{expr}: a policy reading missing data went online"),
        }
    }
    // The region needs nothing: the default is `local`.
    let mut config = edge.agent_config(TOKEN, "nofacts", app.addr);
    config.endpoints[0].policies = document(
        "on_http_request:\n  - expressions: [\"conn.server_region == 'local'\"]\n    actions: [{type: deny, config: {status_code: 451}}]\n",
    );
    let agent = TestAgent::start(config).await?;
    let r = client().get(agent.url()).send().await?;
    assert_eq!(r.status(), 451);
    agent.stop().await
}

#[tokio::test]
async fn bad_fact_files_stop_the_edge_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bad_list = dir.path().join("bad.txt");
    std::fs::write(&bad_list, "127.0.0.1\n# fine\n300.1.2.3/8\n")?;
    let err = TestEdge::start_with(|c| {
        c.facts.ip_categories = vec![("office".into(), bad_list.clone())];
    })
    .await
    .err()
    .map(|e| format!("{e:#}"));
    let want = format!(
        "facts.ip_categories.office: {}:3: `300.1.2.3/8` is not an IP address or CIDR",
        bad_list.display()
    );
    assert!(err.as_deref().is_some_and(|e| e.contains(&want)), "{err:?}");

    // An ASN database where the city database goes.
    let asn = dir.path().join("asn.mmdb");
    let record = AsnRecord {
        autonomous_system_number: 1,
        autonomous_system_organization: "x",
    };
    write_db(&asn, "GeoLite2-ASN", &record)?;
    let err = TestEdge::start_with(|c| c.facts.geoip_city = Some(asn.clone()))
        .await
        .err()
        .map(|e| format!("{e:#}"));
    assert!(
        err.as_deref().is_some_and(
            |e| e.contains("facts.geoip_city") && e.contains("`GeoLite2-ASN` database")
        ),
        "{err:?}"
    );

    // Not a database at all, and regexes that are not uap-core's.
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, "not a database")?;
    let err = TestEdge::start_with(|c| c.facts.geoip_asn = Some(junk.clone()))
        .await
        .err()
        .map(|e| format!("{e:#}"));
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("facts.geoip_asn")),
        "{err:?}"
    );
    let err =
        TestEdge::start_with(|c| c.facts.user_agent_regexes = RegexesPath::Given(junk.clone()))
            .await
            .err()
            .map(|e| format!("{e:#}"));
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("facts.user_agent_regexes") && e.contains("uap-core")),
        "{err:?}"
    );
    Ok(())
}
