//! Layering, validation and error messages of the runner configuration.

use super::*;

fn dir_with(yaml: &str) -> (tempfile::TempDir, ConfigDir) {
    let temp = tempfile::tempdir().unwrap();
    let dir = ConfigDir::new(temp.path());
    std::fs::write(dir.runner_yaml(), yaml).unwrap();
    (temp, dir)
}

#[test]
fn flags_beat_env_beat_file_beat_defaults() {
    let (_temp, dir) = dir_with("max_concurrent_agents: 2\nname: from-file\n");
    let env = HashMap::from([("KILN_MAX_CONCURRENT_AGENTS".to_owned(), "3".to_owned())]);
    let flags = Overrides {
        max_concurrent_agents: Some(4),
        ..Overrides::default()
    };
    let load = |env: &HashMap<String, String>, flags: &Overrides| {
        RunnerConfig::load_with_env(&dir, env, flags).unwrap()
    };
    assert_eq!(load(&env, &flags).max_concurrent_agents, 4);
    assert_eq!(load(&env, &Overrides::default()).max_concurrent_agents, 3);
    assert_eq!(
        load(&HashMap::new(), &Overrides::default()).max_concurrent_agents,
        2
    );
    assert_eq!(
        load(&HashMap::new(), &Overrides::default()).name,
        "from-file"
    );
    let empty = tempfile::tempdir().unwrap();
    let defaults = RunnerConfig::load_with_env(
        &ConfigDir::new(empty.path()),
        &HashMap::new(),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        defaults.max_concurrent_agents,
        DEFAULT_MAX_CONCURRENT_AGENTS
    );
}

#[test]
fn env_capabilities_are_a_comma_list() {
    let (_temp, dir) = dir_with("");
    let env = HashMap::from([("KILN_CAPABILITIES".to_owned(), "docker,gpu".to_owned())]);
    let config = RunnerConfig::load_with_env(&dir, &env, &Overrides::default()).unwrap();
    assert_eq!(config.capabilities, ["docker", "gpu"]);
}

#[test]
fn env_runner_name_sets_the_name() {
    let (_temp, dir) = dir_with("name: from-file\n");
    let env = HashMap::from([("KILN_RUNNER_NAME".to_owned(), "from-env".to_owned())]);
    let config = RunnerConfig::load_with_env(&dir, &env, &Overrides::default()).unwrap();
    assert_eq!(config.name, "from-env");
}

#[test]
fn wrong_type_names_file_key_and_value() {
    let (_temp, dir) = dir_with("max_concurrent_agents: lots\n");
    let error = RunnerConfig::load_with_env(&dir, &HashMap::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("max_concurrent_agents"), "{error}");
    assert!(error.contains("lots"), "{error}");
    assert!(
        error.contains(&dir.runner_yaml().display().to_string()),
        "{error}"
    );
}

#[test]
fn out_of_range_value_names_key() {
    let (_temp, dir) = dir_with("max_concurrent_agents: 0\n");
    let error = RunnerConfig::load_with_env(&dir, &HashMap::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("max_concurrent_agents is 0"), "{error}");
}

#[test]
fn missing_identity_says_what_to_do() {
    let (_temp, dir) = dir_with("");
    let config = RunnerConfig::load_with_env(&dir, &HashMap::new(), &Overrides::default()).unwrap();
    let error = config.identity().unwrap_err().to_string();
    assert!(error.contains("kiln-runner register"), "{error}");
}

#[test]
fn metrics_listen_must_be_an_address() {
    let (_temp, dir) = dir_with("metrics_listen: localhost\n");
    let error = RunnerConfig::load_with_env(&dir, &HashMap::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("metrics_listen"), "{error}");
    assert!(error.contains("\"localhost\""), "{error}");
    let env = HashMap::from([(
        "KILN_METRICS_LISTEN".to_owned(),
        "127.0.0.1:9464".to_owned(),
    )]);
    let config = RunnerConfig::load_with_env(&dir, &env, &Overrides::default()).unwrap();
    assert_eq!(
        config.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
}

#[test]
fn spare_worktrees_default_to_two_and_refuse_too_many_naming_the_key() {
    let (_temp, dir) = dir_with("spare_worktrees: 5\n");
    let load = |env: &HashMap<String, String>| {
        RunnerConfig::load_with_env(&dir, env, &Overrides::default())
    };
    assert_eq!(load(&HashMap::new()).unwrap().spare_worktrees, 5);
    let env = |value: &str| HashMap::from([("KILN_SPARE_WORKTREES".to_owned(), value.to_owned())]);
    assert_eq!(load(&env("0")).unwrap().spare_worktrees, 0);
    let error = load(&env("65")).unwrap_err().to_string();
    assert_eq!(error, "spare_worktrees is 65; it must be 0 to 64");
    let error = load(&env("many")).unwrap_err().to_string();
    assert!(error.contains("spare_worktrees"), "{error}");
    let (_empty, defaults) = dir_with("");
    let config = RunnerConfig::load_with_env(&defaults, &HashMap::new(), &Overrides::default());
    assert_eq!(config.unwrap().spare_worktrees, DEFAULT_SPARE_WORKTREES);
}

#[test]
fn relative_paths_are_made_absolute_so_a_fence_hides_what_they_name() {
    let (_temp, dir) = dir_with("worktree_base: work\ncache_dir: cache\n");
    let env = HashMap::from([("KILN_AGENT_HIDDEN_PATHS".to_owned(), "secrets".to_owned())]);
    let config = RunnerConfig::load_with_env(&dir, &env, &Overrides::default()).unwrap();
    let here = std::env::current_dir().unwrap();
    assert_eq!(config.worktree_base, here.join("work"));
    assert_eq!(config.cache_dir, here.join("cache"));
    assert_eq!(config.agent_hidden_paths, [here.join("secrets")]);
    assert_eq!(
        crate::config::ConfigDir::new("conf").path(),
        here.join("conf")
    );
}
