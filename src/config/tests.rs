use super::vars::field_names;
use super::*;

#[test]
fn defaults_apply_when_nothing_is_set() {
    let c = CoreConfig::from_vars(vars(&[("UNRELATED", "x")])).unwrap();
    assert_eq!(c, CoreConfig::default());
    c.validate().unwrap();
    assert_eq!(c.counter_kind().unwrap(), CounterKind::Exact);
}

#[test]
fn variables_are_read() {
    let c = CoreConfig::from_vars(vars(&[
        ("DISTINCTLY_COUNTER", "hll"),
        ("DISTINCTLY_HLL_PRECISION", "12"),
        ("DISTINCTLY_WINDOW_SECONDS", "300"),
    ]))
    .unwrap();
    assert_eq!(
        c.counter_kind().unwrap(),
        CounterKind::Hll { precision: 12 }
    );
    assert_eq!(c.window_seconds, Some(300));
    for (backend, kind) in [
        ("cpc", CounterKind::Cpc { lg_k: 11 }),
        ("hll4", CounterKind::Hll4 { lg_k: 11 }),
    ] {
        let c = CoreConfig::from_vars(vars(&[
            ("DISTINCTLY_COUNTER", backend),
            ("DISTINCTLY_SKETCH_LGK", "11"),
        ]))
        .unwrap();
        assert_eq!(c.counter_kind().unwrap(), kind);
        assert_eq!(kind.to_string(), format!("{backend}-lgk11"));
    }
}

#[test]
fn a_flag_wins_over_its_variable_even_a_malformed_one() {
    use crate::cli::CoreArgs;
    let env = vars(&[
        ("DISTINCTLY_WINDOW_SECONDS", "abc"),
        ("DISTINCTLY_COUNTER", "hll"),
    ]);
    let args = CoreArgs {
        window_seconds: Some(300),
        ..CoreArgs::default()
    };
    let c = args.load(env.clone()).unwrap();
    assert_eq!(c.window_seconds, Some(300));
    assert_eq!(c.counter, "hll");
    // Without the flag the variable is read, and its error names it.
    let e = CoreArgs::default().load(env).unwrap_err();
    assert!(
        e.to_string().starts_with("DISTINCTLY_WINDOW_SECONDS: "),
        "{e}"
    );
    // A bad flag value is named by its flag.
    let args = CoreArgs {
        window_seconds: Some(0),
        max_behind_seconds: Some(10),
        ..CoreArgs::default()
    };
    let e = args.load(vars(&[])).unwrap_err().to_string();
    assert_eq!(e, "--window-seconds: 0 is outside 1..=31622400");
    let args = CoreArgs {
        max_behind_seconds: Some(10),
        ..CoreArgs::default()
    };
    let e = args.load(vars(&[])).unwrap_err().to_string();
    assert!(
        e.starts_with("--max-behind-seconds: 10 is less than DISTINCTLY_ALLOWED_LATENESS_SECONDS"),
        "{e}"
    );
}

#[test]
fn absurd_values_are_refused_with_their_bounds() {
    for (var, value, want) in [
        (
            "DISTINCTLY_MAX_MESSAGE_BYTES",
            "1073741825",
            "1073741825 is outside 16..=1073741824",
        ),
        (
            "DISTINCTLY_WINDOW_SECONDS",
            "18446744073709551615",
            "18446744073709551615 is outside 1..=31622400",
        ),
        (
            "DISTINCTLY_LATE_RETENTION_SECONDS",
            "99999999999",
            "99999999999 is outside 0..=31622400",
        ),
        (
            "DISTINCTLY_JUMP_CONFIRM_EVENTS",
            "1001",
            "1001 is outside 1..=1000",
        ),
    ] {
        let c = CoreConfig::from_vars(vars(&[
            (var, value),
            ("DISTINCTLY_MAX_BEHIND_SECONDS", "18446744073709551615"),
        ]))
        .unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            format!("{var}: {want}")
        );
    }
    let c = CoreConfig::from_vars(vars(&[
        ("DISTINCTLY_MAX_MESSAGE_BYTES", "1073741824"),
        ("DISTINCTLY_WINDOW_SECONDS", "31622400"),
    ]))
    .unwrap();
    c.validate().unwrap();
}

#[test]
fn unknown_variables_are_found_with_a_suggestion() {
    let found = crate::cli::unknown_variables(vars(&[
        ("DISTINCTLY_COUNTR", "hll"),
        ("DISTINCTLY_COUNTER", "hll"),
        ("DISTINCTLY_METRICS_ADDR", ""),
        ("DISTINCTLY_IDLE_PARTITION_SECONDS", "3"),
        ("DISTINCTLY_RDKAFKA_SSL_CA_LOCATION", "/ca"),
        ("DISTINCTLY_SOMETHING_ELSE_ENTIRELY", "x"),
        ("PATH", "/bin"),
    ]));
    assert_eq!(
        found,
        vec![
            (
                "DISTINCTLY_COUNTR".to_string(),
                Some("DISTINCTLY_COUNTER".to_string())
            ),
            ("DISTINCTLY_SOMETHING_ELSE_ENTIRELY".to_string(), None),
        ]
    );
    let known = crate::cli::known_variables();
    assert!(known.contains(&"DISTINCTLY_WINDOW_SECONDS".to_string()));
    assert!(known.contains(&"DISTINCTLY_COMMIT_INTERVAL_SECONDS".to_string()));
}

/// `variable -> default cell` of every table row of the README that
/// starts with a variable in backticks.
fn readme_rows() -> std::collections::BTreeMap<String, String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut rows = std::collections::BTreeMap::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let names = cells[0].trim_start_matches("| ");
        for name in names.split(", ") {
            rows.insert(
                name.trim_matches('`').to_string(),
                cells[1].trim().to_string(),
            );
        }
    }
    rows
}

#[test]
fn the_readme_tables_match_the_code() {
    let rows = readme_rows();
    // Every setting the code reads has a row, and no row is invented.
    let mut code: Vec<String> = crate::cli::known_variables();
    code.extend(
        field_names::<crate::kafka::config::KafkaEnv>()
            .iter()
            .map(|f| format!("KAFKA_{}", f.to_uppercase())),
    );
    for var in &code {
        assert!(rows.contains_key(var), "{var} has no row in the README");
    }
    for var in rows
        .keys()
        .filter(|v| v.starts_with("DISTINCTLY_") || v.starts_with("KAFKA_"))
    {
        let family = var.starts_with("DISTINCTLY_RDKAFKA_") && var.contains("<NAME>");
        assert!(
            family || code.contains(var),
            "README row {var}: no such setting"
        );
    }
    // Every default in the README is the code's.
    let mut want: Vec<(String, String)> = Vec::new();
    let as_text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for value in [
        serde_json::to_value(CoreConfig::default()).unwrap(),
        serde_json::to_value(crate::kafka::config::ServiceEnv::default()).unwrap(),
    ] {
        for (field, v) in value.as_object().unwrap() {
            let var = format!("DISTINCTLY_{}", field.to_uppercase());
            // An optional setting: its default is checked below.
            if !v.is_null() {
                want.push((var, as_text(v)));
            }
        }
    }
    use crate::kafka::config::defaults as kafka;
    want.extend([
        (
            "KAFKA_SERVICE_INTERNAL_PORT".into(),
            kafka::port().to_string(),
        ),
        ("KAFKA_SERVICE_GROUP_ID".into(), kafka::group_id()),
        ("KAFKA_AUTO_OFFSET_RESET".into(), kafka::auto_offset_reset()),
        (
            "KAFKA_SERVICE_SASL_MECHANISM".into(),
            kafka::sasl_mechanism(),
        ),
        ("DISTINCTLY_WINDOWS".into(), defaults::WINDOWS.into()),
        (
            "DISTINCTLY_METRICS_ADDR".into(),
            defaults::METRICS_ADDR.into(),
        ),
        (
            "DISTINCTLY_LOG".into(),
            crate::logging::default_level(true).into(),
        ),
        ("DISTINCTLY_LOG_FORMAT".into(), "text".into()),
    ]);
    for (var, value) in want {
        let cell = &rows[&var];
        assert!(
            cell.starts_with(&format!("`{value}`")),
            "README says {var} defaults to {cell}, the code to {value}"
        );
    }
    // The one-size form has no value of its own.
    assert!(rows["DISTINCTLY_WINDOW_SECONDS"].starts_with("unset"));
    for var in [
        "KAFKA_SERVICE_INTERNAL_HOST",
        "KAFKA_SERVICE_INPUT_TOPIC",
        "KAFKA_SERVICE_OUTPUT_TOPIC",
    ] {
        assert_eq!(rows[var], "required", "{var}");
    }
}

#[test]
fn errors_name_the_variable() {
    let e = CoreConfig::from_vars(vars(&[("DISTINCTLY_WINDOW_SECONDS", "sixty")])).unwrap_err();
    assert!(
        e.to_string().starts_with("DISTINCTLY_WINDOW_SECONDS: "),
        "{e}"
    );
    for (pairs, var) in [
        (vec![("DISTINCTLY_COUNTER", "bloom")], "DISTINCTLY_COUNTER"),
        (
            vec![
                ("DISTINCTLY_COUNTER", "hll"),
                ("DISTINCTLY_HLL_PRECISION", "20"),
            ],
            "DISTINCTLY_HLL_PRECISION",
        ),
        (
            vec![
                ("DISTINCTLY_COUNTER", "cpc"),
                ("DISTINCTLY_SKETCH_LGK", "22"),
            ],
            "DISTINCTLY_SKETCH_LGK",
        ),
        (
            vec![("DISTINCTLY_SKETCH_LGK", "3")],
            "DISTINCTLY_SKETCH_LGK",
        ),
        (
            vec![("DISTINCTLY_WINDOW_SECONDS", "0")],
            "DISTINCTLY_WINDOW_SECONDS",
        ),
        (
            vec![("DISTINCTLY_MAX_BEHIND_SECONDS", "100")],
            "DISTINCTLY_MAX_BEHIND_SECONDS",
        ),
    ] {
        let c = CoreConfig::from_vars(vars(&pairs)).unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.to_string().starts_with(var), "{e}");
    }
}

#[test]
fn at_most_64_window_sizes() {
    let list = |n: u64| {
        (1..=n)
            .map(|i| format!("{i}s"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let c = CoreConfig::from_vars(vars(&[("DISTINCTLY_WINDOWS", &list(64))])).unwrap();
    assert_eq!(c.sizes().unwrap().len(), 64);
    let c = CoreConfig::from_vars(vars(&[("DISTINCTLY_WINDOWS", &list(65))])).unwrap();
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "DISTINCTLY_WINDOWS: 65 sizes; at most 64 (each event is counted once per size)"
    );
}
