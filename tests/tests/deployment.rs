//! docker-compose.yml is for users (no Docker engine runs here): check that it
//! parses and wires roomcast to PostgreSQL 16 the way the README says.

use serde_yaml::Value;

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("docker-compose.yml exists");
    serde_yaml::from_str(&text).expect("docker-compose.yml is valid YAML")
}

#[test]
fn compose_runs_roomcast_against_postgres_16() {
    let c = compose();
    let services = &c["services"];
    let pg = &services["postgres"];
    assert!(pg["image"].as_str().unwrap().starts_with("postgres:16"));
    assert!(
        pg["healthcheck"]["test"].as_sequence().is_some(),
        "postgres has a health check"
    );
    let pg_volume = pg["volumes"][0].as_str().unwrap();
    let volume_name = pg_volume.split(':').next().unwrap();
    assert!(
        c["volumes"].get(volume_name).is_some(),
        "named volume {volume_name} declared"
    );

    let rc = &services["roomcast"];
    assert_eq!(rc["depends_on"]["postgres"]["condition"], "service_healthy");
    let env = &rc["environment"];
    let url = env["ROOMCAST_DATABASE_URL"].as_str().unwrap();
    assert!(
        url.starts_with("postgres://") && url.contains("@postgres:5432/"),
        "{url}"
    );
    assert!(env["ROOMCAST_BIND"].as_str().unwrap().ends_with(":8080"));
    assert_eq!(rc["ports"][0], "8080:8080");
    assert_eq!(rc["build"]["dockerfile"], "Dockerfile");
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile")).unwrap();
    assert!(dockerfile.contains("--bin roomcast"));
}

#[test]
fn every_environment_variable_in_compose_is_a_real_setting() {
    let c = compose();
    // Every ROOMCAST_* name in the compose file must be one the server reads.
    let known: Vec<String> = <roomcast_server::Config as clap::CommandFactory>::command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    for (name, _) in c["services"]["roomcast"]["environment"]
        .as_mapping()
        .unwrap()
    {
        let name = name.as_str().unwrap();
        if name.starts_with("ROOMCAST_") {
            assert!(
                known.iter().any(|k| k == name),
                "{name} is not a roomcast setting"
            );
        }
    }
}
