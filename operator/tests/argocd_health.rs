//! ArgoCD's health check for Predictors (`argocd/health.lua`), run the way ArgoCD runs a script
//! from `argocd-cm`, against the cases in `argocd/health_test.yaml` (ArgoCD's own test format).
//!
//! The sandbox copies argo-cd `util/lua/lua.go` (`runLua`, `ExecuteHealthLua`): only the `base`,
//! `table` and `package` libraries plus a "safe" `os` with `time` and `date`; the object as global
//! `obj`; a one-second limit; the returned table's `status` must be a known health code, else
//! `Unknown`. ArgoCD uses gopher-lua, this uses PUC Lua 5.1 (mlua, vendored); for scripts like ours
//! they differ only in error texts, so only status and message are compared.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use mlua::{HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use operator::analysis::{Samples, Verdict, judge};
use operator::canary::{Progress, Stage, next_rollout};
use operator::crd::{Candidate, Predictor};
use operator::fixtures::{SHA_B, autoscaled, canary, deployment_of, observed_of, predictor, time};
use operator::status::{
    ImageCheck, ModelCheck, Observed, RolloutView, compute_status, compute_status_with_rollout,
    reason,
};
use serde::Deserialize;

#[path = "support/kstatus.rs"]
mod kstatus;
#[path = "support/program.rs"]
mod program;

/// ArgoCD cancels a script after one second (`context.WithTimeout(…, 1*time.Second)`).
const TIME_LIMIT: Duration = Duration::from_secs(1);
/// The health codes ArgoCD accepts (gitops-engine `pkg/health`).
const HEALTH_CODES: [&str; 6] = [
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];
/// The `argocd-cm` key that holds our script.
const CM_KEY: &str = "resource.customizations.health.mlops.dev_Predictor";

/// What a health script returns, as ArgoCD decodes it.
#[derive(Debug, PartialEq, Eq, Deserialize)]
struct HealthStatus {
    status: String,
    #[serde(default)]
    message: String,
}

/// `health_test.yaml`.
#[derive(Deserialize)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthTest {
    health_status: HealthStatus,
    input_path: String,
}

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../argocd")
}

fn read(name: &str) -> String {
    let path = argocd_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml_file(name: &str) -> serde_json::Value {
    serde_saphyr::from_str(&read(name)).unwrap_or_else(|e| panic!("parse argocd/{name}: {e}"))
}

/// A Lua state with exactly what ArgoCD opens for a script from `argocd-cm`.
fn argocd_sandbox() -> mlua::Result<Lua> {
    // mlua always opens `base`; `package` comes with C module loading disabled.
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::PACKAGE | StdLib::OS,
        LuaOptions::default(),
    )?;
    // NB: ArgoCD's "safe" os (util/lua/oslib_safe.go) has only `time` and `date`: no exit,
    // execute, getenv, remove, rename, tmpname or clock. Keep those two, drop the rest.
    let globals = lua.globals();
    let full_os: Table = globals.get("os")?;
    let safe_os = lua.create_table()?;
    for name in ["time", "date"] {
        safe_os.set(name, full_os.get::<Value>(name)?)?;
    }
    globals.set("os", &safe_os)?;
    let loaded: Table = globals.get::<Table>("package")?.get("loaded")?;
    loaded.set("os", safe_os)?;
    Ok(lua)
}

/// JSON → Lua the way argo's `decodeValue` does it: objects and arrays become tables, every
/// number a double, `null` nil.
fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        J::Object(fields) => {
            let table = lua.create_table_with_capacity(0, fields.len())?;
            for (key, item) in fields {
                table.raw_set(key.as_str(), to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
    })
}

/// Runs `script` on `obj` like ArgoCD's `ExecuteHealthLua`; `Err` is what ArgoCD would report as
/// a failed health check.
fn run_health(script: &str, obj: &serde_json::Value) -> Result<HealthStatus, String> {
    let lua = argocd_sandbox().map_err(|e| format!("sandbox: {e}"))?;
    lua.globals()
        .set("obj", to_lua(&lua, obj).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(1_000),
        move |_, _| {
            if started.elapsed() > TIME_LIMIT {
                Err(mlua::Error::runtime("context deadline exceeded"))
            } else {
                Ok(VmState::Continue)
            }
        },
    )
    .map_err(|e| e.to_string())?;
    let returned: MultiValue = lua
        .load(script)
        .set_name("health.lua")
        .eval()
        .map_err(|e| e.to_string())?;
    // NB: argo reads the top of the stack, i.e. the LAST value a script returns.
    let table = match returned.into_iter().last() {
        Some(Value::Table(t)) => t,
        other => {
            let type_name = other.map_or("nil", |v| v.type_name());
            return Err(format!(
                "expect table output from Lua script, not {type_name}"
            ));
        }
    };
    let field = |name: &str| match table.get::<Value>(name) {
        Ok(Value::Nil) => Ok(String::new()),
        Ok(Value::String(s)) => Ok(s.to_string_lossy()),
        Ok(other) => Err(format!(
            "cannot unmarshal {} into HealthStatus.{name}",
            other.type_name()
        )),
        Err(e) => Err(e.to_string()),
    };
    let status = field("status")?;
    if !HEALTH_CODES.contains(&status.as_str()) {
        return Ok(HealthStatus {
            status: "Unknown".into(),
            message: "Lua returned an invalid health status".into(),
        });
    }
    Ok(HealthStatus {
        status,
        message: field("message")?,
    })
}

fn health_lua() -> String {
    read("health.lua")
}

#[test]
fn every_case_in_health_test_yaml_passes() {
    let cases: HealthTests =
        serde_saphyr::from_str(&read("health_test.yaml")).expect("health_test.yaml parses");
    let script = health_lua();
    let mut failures = Vec::new();
    for case in &cases.tests {
        let obj = yaml_file(&case.input_path);
        match run_health(&script, &obj) {
            Ok(got) if got == case.health_status => {}
            Ok(got) => failures.push(format!(
                "{}: expected {:?}, got {got:?}",
                case.input_path, case.health_status
            )),
            Err(e) => failures.push(format!("{}: script failed: {e}", case.input_path)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The cases issue 6 asks for are there, and no input file is left without a case.
    let inputs: Vec<&str> = cases.tests.iter().map(|c| c.input_path.as_str()).collect();
    for required in [
        "testdata/healthy.yaml",
        "testdata/progressing-new-generation.yaml",
        "testdata/progressing-rollout.yaml",
        "testdata/degraded-digest-mismatch.yaml",
        "testdata/no-status.yaml",
        "testdata/progressing-canary-analysis.yaml",
        "testdata/degraded-canary-rolled-back.yaml",
        "testdata/healthy-canary-promoted.yaml",
        "testdata/healthy-drifted.yaml",
        "testdata/healthy-drift-unknown.yaml",
    ] {
        assert!(inputs.contains(&required), "no case for {required}");
    }
    for entry in std::fs::read_dir(argocd_dir().join("testdata")).expect("argocd/testdata") {
        let name = format!("testdata/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(inputs.contains(&name.as_str()), "{name} has no case");
    }
}

#[test]
fn argocd_cm_patch_embeds_health_lua_byte_for_byte() {
    let patch = yaml_file("argocd-cm-patch.yaml");
    assert_eq!(patch["kind"], "ConfigMap");
    assert_eq!(patch["metadata"]["name"], "argocd-cm");
    let embedded = patch["data"][CM_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("argocd-cm-patch.yaml has no data.{CM_KEY}"));
    assert!(
        embedded == health_lua(),
        "the copy in argocd-cm-patch.yaml differs from argocd/health.lua; re-indent health.lua by \
         4 spaces under `{CM_KEY}: |`"
    );
    // Without this key ArgoCD would open string/math for us and hide a sandbox violation.
    let open_libs = format!(
        "resource.customizations.useOpenLibs.{}",
        "mlops.dev_Predictor"
    );
    assert!(patch["data"].get(&open_libs).is_none());
}

#[test]
fn the_sandbox_is_as_strict_as_argocds() {
    let obj = serde_json::json!({"kind": "Predictor"});
    for script in [
        r#"return {status = string.upper("healthy")}"#,
        r#"return {status = ("Healthy"):sub(1)}"#,
        r#"return {status = "Healthy", message = tostring(math.floor(1.5))}"#,
        r#"return {status = "Healthy", message = io.read()}"#,
        r#"return {status = "Healthy", message = os.getenv("HOME")}"#,
        r#"os.exit(1)"#,
        r#"return {status = "Healthy", message = require("string").rep("x", 2)}"#,
    ] {
        // Each fails because the library is not there, not for some other reason.
        let result = run_health(script, &obj);
        assert!(
            result
                .as_ref()
                .is_err_and(|e| ["a nil value", "index a string value", "not found"]
                    .iter()
                    .any(|why| e.contains(why))),
            "{script} should fail for lack of a library, got {result:?}"
        );
    }
    // What ArgoCD does open still works.
    let ok = r#"
        local t = {}
        table.insert(t, "a")
        local now = os.time()
        assert(type(now) == "number" and os.date("!%Y") ~= nil)
        return {status = "Healthy", message = tostring(#t) .. " " .. type(obj.kind)}
    "#;
    assert_eq!(
        run_health(ok, &obj),
        Ok(HealthStatus {
            status: "Healthy".into(),
            message: "1 string".into()
        })
    );
}

#[test]
fn health_lua_names_no_library_argocd_leaves_closed() {
    // The cases above only run the branches they reach; this covers every line.
    for (n, line) in health_lua().lines().enumerate() {
        let code = line.split("--").next().unwrap_or("");
        for banned in [
            "string.", "math.", "io.", "os.", "debug.", "require", "load",
        ] {
            assert!(
                !code.contains(banned),
                "health.lua:{}: uses `{banned}`, which ArgoCD does not open: {line}",
                n + 1
            );
        }
        assert!(
            !code.contains("):") && !code.contains("\":"),
            "health.lua:{}: string methods need the string library: {line}",
            n + 1
        );
    }
}

#[test]
fn harness_behaves_like_argocd_on_bad_scripts() {
    let obj = serde_json::json!({});
    let started = Instant::now();
    let looped = run_health("while true do end", &obj);
    assert!(
        looped
            .as_ref()
            .is_err_and(|e| e.contains("deadline exceeded")),
        "{looped:?}"
    );
    assert!(
        started.elapsed() < TIME_LIMIT * 5,
        "{:?}",
        started.elapsed()
    );

    assert_eq!(
        run_health(r#"return {status = "Fine"}"#, &obj),
        Ok(HealthStatus {
            status: "Unknown".into(),
            message: "Lua returned an invalid health status".into()
        })
    );
    assert_eq!(
        run_health(r#"return "Healthy""#, &obj),
        Err("expect table output from Lua script, not string".into())
    );
}

/// The Predictor as ArgoCD would see it after the operator wrote the status it computes.
fn with_operator_status(mut p: Predictor, d: &Deployment, model: ModelCheck) -> serde_json::Value {
    let observed = Observed {
        model,
        ..observed_of(&p, Some(d))
    };
    p.status = Some(compute_status(&p, &observed, &time(0)));
    serde_json::to_value(&p).expect("serializes")
}

#[test]
fn health_lua_reads_the_status_the_operator_really_computes() {
    // Guards against the testdata drifting from operator/src/status/.
    let script = health_lua();
    let status_of = |obj: &serde_json::Value| run_health(&script, obj).expect("runs").status;

    let p = predictor("american", "team-a");
    let done = with_operator_status(
        p.clone(),
        &deployment_of(&p).rolled_out(2),
        ModelCheck::Passed(()),
    );
    assert_eq!(status_of(&done), "Healthy");

    let rolling = with_operator_status(
        p.clone(),
        &deployment_of(&p).rolling(2, 1),
        ModelCheck::Passed(()),
    );
    assert_eq!(status_of(&rolling), "Progressing");

    let rejected = with_operator_status(
        p.clone(),
        &deployment_of(&p).rolled_out(2),
        ModelCheck::Rejected {
            reason: "DigestMismatch".into(),
            message: "model has sha256 0123…, but spec.model.sha256 expects aa30…".into(),
        },
    );
    assert_eq!(
        run_health(&script, &rejected),
        Ok(HealthStatus {
            status: "Degraded".into(),
            message: "model has sha256 0123…, but spec.model.sha256 expects aa30…".into()
        })
    );

    // A child's name is taken by an object the Predictor does not control: ArgoCD shows why.
    let mut conflicted = p.clone();
    let conflict = "Service american exists, with no controller: the operator changes only \
                    objects this Predictor controls and left it alone; remove or rename it, or \
                    rename the Predictor";
    conflicted.status = Some(compute_status(
        &conflicted,
        &Observed {
            model: ModelCheck::Unchecked {
                reason: "ChildConflict".into(),
                message: "not checked".into(),
            },
            conflict: Some(conflict.into()),
            ..observed_of(&p, None)
        },
        &time(0),
    ));
    assert_eq!(
        run_health(&script, &serde_json::to_value(&conflicted).unwrap()),
        Ok(HealthStatus {
            status: "Degraded".into(),
            message: conflict.into()
        })
    );

    // Git moved on to generation 2; the operator's status still says 1.
    let mut stale = done.clone();
    stale["metadata"]["generation"] = 2.into();
    assert_eq!(
        run_health(&script, &stale),
        Ok(HealthStatus {
            status: "Progressing".into(),
            message: "waiting for the operator".into()
        })
    );
}

/// An autoscaled Predictor as the operator computes its status while the autoscaler adds and
/// removes pods: Healthy throughout (a scale is not a rollout), Progressing for a real rollout.
#[test]
fn health_lua_keeps_an_autoscaled_predictor_healthy_while_it_scales() {
    let script = health_lua();
    let status_of = |obj: &serde_json::Value| run_health(&script, obj).expect("runs");
    let p = autoscaled(predictor("american", "team-a"));
    let served = with_operator_status(
        p.clone(),
        &deployment_of(&p).rolled_out(2),
        ModelCheck::Passed(()),
    );
    assert_eq!(status_of(&served).status, "Healthy");
    let mut p: Predictor = serde_json::from_value(served).unwrap();

    // Scaled up to 4 by the autoscaler: 2 pods still starting.
    let mut up = deployment_of(&p).with_counts(4, 2, 4, 2);
    up.spec.replicas = Some(4);
    let scaling = with_operator_status(p.clone(), &up, ModelCheck::Passed(()));
    assert_eq!(
        status_of(&scaling),
        HealthStatus {
            status: "Healthy".into(),
            message:
                "2/4 pods ready, serving version 0.2 with model 9f2c1e0d4b3a; scaling to 4 pods"
                    .into()
        }
    );
    // And back down to 2 (the other pods are terminating, no longer counted).
    let mut down = deployment_of(&p).rolled_out(2);
    down.spec.replicas = Some(2);
    let settled = with_operator_status(p.clone(), &down, ModelCheck::Passed(()));
    assert_eq!(status_of(&settled).status, "Healthy");

    // A new model while scaled: a rollout, whatever the pod count.
    p.spec.model.sha256 = SHA_B.into();
    p.metadata.generation = Some(2);
    let mut rolling = deployment_of(&p).with_counts(6, 4, 4, 4);
    rolling.spec.replicas = Some(4);
    rolling.metadata.generation = Some(2);
    rolling.status.as_mut().unwrap().observed_generation = Some(2);
    let rolling = with_operator_status(p, &rolling, ModelCheck::Passed(()));
    assert_eq!(status_of(&rolling).status, "Progressing");
}

/// Drift as the operator computes it: a drifted Predictor stays Healthy and says which signal; an
/// Unknown drift adds nothing; drift never makes a rolling-out Predictor Healthy.
#[test]
fn health_lua_tells_drift_without_changing_the_health() {
    use operator::crd::{DriftSpec, MonitoringSpec};
    use operator::drift::{DriftReading, Found};
    use predictor::drift::Signal;
    let script = health_lua();
    let mut p = predictor("american", "team-a");
    p.spec.monitoring = Some(MonitoringSpec {
        drift: Some(DriftSpec::default()),
    });
    let with_drift = |d: &Deployment, found: Found, samples: u64| {
        let mut p = p.clone();
        let observed = Observed {
            drift: Some(DriftReading {
                samples,
                found,
                partial: false,
                at: time(0),
            }),
            ..observed_of(&p, Some(d))
        };
        p.status = Some(compute_status(&p, &observed, &time(0)));
        run_health(&script, &serde_json::to_value(&p).unwrap()).expect("runs")
    };
    let psi = |known: f64| {
        Found::Measured(
            Signal::ALL
                .into_iter()
                .map(|s| (s, Some(if s == Signal::Known { known } else { 0.01 })))
                .collect(),
        )
    };
    let served = deployment_of(&p).rolled_out(2);
    let ready = "2/2 pods ready, serving version 0.2 with model 9f2c1e0d4b3a";
    assert_eq!(
        with_drift(&served, psi(0.41), 812),
        HealthStatus {
            status: "Healthy".into(),
            message: format!("{ready}; drift: known PSI 0.41 > 0.25 (812 samples in the last 10m)")
        }
    );
    assert_eq!(
        with_drift(&served, psi(0.02), 812),
        HealthStatus {
            status: "Healthy".into(),
            message: ready.into()
        }
    );
    assert_eq!(
        with_drift(&served, Found::NoReference, 812),
        HealthStatus {
            status: "Healthy".into(),
            message: ready.into()
        }
    );
    let rolling = deployment_of(&p).rolling(2, 1);
    assert_eq!(with_drift(&rolling, psi(0.41), 812).status, "Progressing");
}

/// A Canary rollout as the operator computes its status: analysing, rolled back, promoted.
/// A Canary Predictor at generation 2 asking for model B over stable pods of model A, and its
/// candidate.
fn canary_at_generation_2() -> (Predictor, Deployment, Candidate) {
    let stable_p = canary(predictor("american", "team-a"));
    let stable = deployment_of(&stable_p).rolled_out(2);
    let mut p = stable_p;
    p.metadata.generation = Some(2);
    p.spec.model.sha256 = SHA_B.into();
    let candidate = Candidate::of(&p, "registry.local/american-predictor:0.2");
    (p, stable, candidate)
}

/// The analysis' verdicts on 3 samples (waiting for more) and on 200 with 10 % errors (failed).
fn canary_verdicts(p: &Predictor) -> (Verdict, Verdict) {
    let spec = p.spec.canary().unwrap().analysis.clone().unwrap();
    let few = Samples {
        requests: 3,
        ..Samples::default()
    };
    let waiting = judge(&spec, &Samples::default(), &few, Duration::ZERO);
    let failing = Samples {
        requests: 200,
        errors: 20,
        ..Samples::default()
    };
    let mut errors_only = spec;
    errors_only.max_disagreement = None;
    errors_only.max_p99_latency_ratio = None;
    let failed = judge(&errors_only, &Samples::default(), &failing, Duration::ZERO);
    (waiting, failed)
}

/// `p` as ArgoCD sees it once the operator wrote the status of its canary rollout at `stage`.
fn canary_computed(
    p: &Predictor,
    candidate: &Candidate,
    deployment: &Deployment,
    progress: Progress,
    stage: Stage,
) -> serde_json::Value {
    let observed = observed_of(p, Some(deployment));
    let view = RolloutView {
        rollout: next_rollout(p, &stage, Some(candidate), progress, &time(0)),
        last_good: None,
    };
    let mut obj = p.clone();
    obj.status = Some(compute_status_with_rollout(p, &observed, &view, &time(0)));
    serde_json::to_value(&obj).expect("serializes")
}

#[test]
fn health_lua_follows_a_canary_rollout_the_operator_computes() {
    let script = health_lua();
    let (p, stable, candidate) = canary_at_generation_2();
    let health = |deployment: &Deployment, progress: Progress, stage: Stage| {
        let obj = canary_computed(&p, &candidate, deployment, progress, stage);
        run_health(&script, &obj).expect("runs")
    };

    let (waiting, failed) = canary_verdicts(&p);
    assert_eq!(
        health(&stable, Progress::Judged(&waiting), Stage::Analysing),
        HealthStatus {
            status: "Progressing".into(),
            message: "waiting: 3 of 100 samples".into()
        }
    );

    let rolled_back = health(&stable, Progress::Judged(&failed), Stage::Analysing);
    assert_eq!(rolled_back.status, "Degraded");
    assert!(
        rolled_back
            .message
            .starts_with("canary rolled back (version 0.2, model 0123456789ab): candidate failed")
            && rolled_back.message.contains("error rate 0.1000")
            && rolled_back.message.contains("(maxErrorRate 0.0100)"),
        "{}",
        rolled_back.message
    );

    // Promoted: the stable Deployment runs the candidate and every pod is ready.
    let mut promoting = p.clone();
    promoting.status = Some(operator::crd::PredictorStatus {
        rollout: next_rollout(
            &p,
            &Stage::Analysing,
            Some(&candidate),
            Progress::Judged(&operator::analysis::Verdict::Pass {
                measured: Default::default(),
                message: "candidate passed the analysis on 150 samples".into(),
            }),
            &time(0),
        ),
        ..Default::default()
    });
    let p = promoting;
    let done = deployment_of(&p).rolled_out(2);
    let observed = observed_of(&p, Some(&done));
    let view = RolloutView {
        rollout: next_rollout(
            &p,
            &Stage::Direct,
            Some(&candidate),
            Progress::Settled {
                stable_complete: true,
            },
            &time(0),
        ),
        last_good: None,
    };
    assert_eq!(view.rollout.as_ref().unwrap().phase, "Promoted");
    let mut obj = p.clone();
    obj.status = Some(compute_status_with_rollout(&p, &observed, &view, &time(0)));
    assert_eq!(
        run_health(&script, &serde_json::to_value(&obj).unwrap()).expect("runs"),
        HealthStatus {
            status: "Healthy".into(),
            message: "2/2 pods ready, serving version 0.2 with model 0123456789ab".into()
        }
    );
}

#[test]
fn manifests_give_argocd_predictors_in_one_namespace_only() {
    let project = yaml_file("appproject.yaml");
    let app = yaml_file("application.yaml");
    assert_eq!(project["kind"], "AppProject");
    assert_eq!(app["kind"], "Application");
    assert_eq!(app["spec"]["project"], project["metadata"]["name"]);

    let spec = &project["spec"];
    assert_eq!(
        spec["namespaceResourceWhitelist"],
        serde_json::json!([{"group": "mlops.dev", "kind": "Predictor"}])
    );
    assert_eq!(spec["clusterResourceWhitelist"], serde_json::json!([]));
    assert_eq!(
        spec["destinations"].as_array().map(Vec::len),
        Some(1),
        "one destination"
    );
    assert_eq!(spec["destinations"][0], app["spec"]["destination"]);
    assert_eq!(
        spec["sourceRepos"],
        serde_json::json!([app["spec"]["source"]["repoURL"]])
    );

    let sync = &app["spec"]["syncPolicy"];
    assert_eq!(sync["automated"]["prune"], true);
    assert_eq!(sync["automated"]["selfHeal"], true);
    let options: Vec<&str> = sync["syncOptions"]
        .as_array()
        .expect("syncOptions")
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    assert!(options.contains(&"ServerSideApply=true"), "{options:?}");
}

// --- kstatus (Flux, kpt, cli-utils) beside health.lua --------------------------------------------------

/// A Predictor state and what a GitOps user is told of it: by ArgoCD (health.lua) and by kstatus.
struct Told {
    state: String,
    object: serde_json::Value,
    health: &'static str,
    kstatus: &'static str,
}

/// What kstatus says where it agrees with ArgoCD's health.
fn kstatus_of(health: &str) -> &'static str {
    match health {
        "Healthy" => "Current",
        "Progressing" => "InProgress",
        "Degraded" => "Failed",
        other => panic!("no kstatus counterpart for health {other}"),
    }
}

/// Every state the operator computes, as the status builders compute it: settled, rolling out, not yet
/// observed, refused (model, image, child), stuck (deadline), pods not ready, scaled to zero, a store that
/// is down, a canary analysing and rolled back.
fn computed_states() -> Vec<Told> {
    let p = predictor("american", "team-a");
    let served = deployment_of(&p).rolled_out(2);
    let status = |p: &Predictor, observed: Observed| {
        let mut p = p.clone();
        p.status = Some(compute_status(&p, &observed, &time(0)));
        serde_json::to_value(&p).expect("serializes")
    };
    let rejected = |reason: &str| ModelCheck::Rejected {
        reason: reason.into(),
        message: format!("refused: {reason}"),
    };
    let told = |state: &str, object, health, kstatus| Told {
        state: state.into(),
        object,
        health,
        kstatus,
    };
    let mut states = vec![
        told(
            "settled",
            status(&p, observed_of(&p, Some(&served))),
            "Healthy",
            "Current",
        ),
        told(
            "rolling out",
            status(&p, observed_of(&p, Some(&deployment_of(&p).rolling(2, 1)))),
            "Progressing",
            "InProgress",
        ),
        told(
            "digest mismatch",
            status(
                &p,
                Observed {
                    model: rejected(reason::DIGEST_MISMATCH),
                    ..observed_of(&p, Some(&served))
                },
            ),
            "Degraded",
            "Failed",
        ),
        told(
            "image not found",
            status(
                &p,
                Observed {
                    image: ImageCheck::Rejected {
                        reason: reason::IMAGE_NOT_FOUND.into(),
                        message: "no such tag".into(),
                    },
                    ..observed_of(&p, Some(&served))
                },
            ),
            "Degraded",
            "Failed",
        ),
        told(
            "child conflict",
            status(
                &p,
                Observed {
                    conflict: Some("Service american exists, with no controller".into()),
                    ..observed_of(&p, None)
                },
            ),
            "Degraded",
            "Failed",
        ),
        told(
            "deadline exceeded",
            status(
                &p,
                observed_of(&p, Some(&deployment_of(&p).deadline_exceeded())),
            ),
            "Degraded",
            "Failed",
        ),
        told(
            "pods not all ready",
            status(
                &p,
                observed_of(&p, Some(&deployment_of(&p).with_counts(2, 1, 2, 1))),
            ),
            "Progressing",
            "InProgress",
        ),
        // The one difference, on purpose: the operator retries a store that is down, so Flux waits
        // (InProgress) where ArgoCD already shows the problem (Degraded).
        told(
            "model store down",
            status(
                &p,
                Observed {
                    model: rejected(reason::FETCH_FAILED),
                    ..observed_of(&p, Some(&served))
                },
            ),
            "Degraded",
            "InProgress",
        ),
    ];
    let mut stale = states[0].object.clone();
    stale["metadata"]["generation"] = 2.into();
    states.push(told(
        "a generation not observed yet",
        stale,
        "Progressing",
        "InProgress",
    ));
    let mut zero = p.clone();
    zero.spec.replicas = 0;
    let none = deployment_of(&zero).rolled_out(0);
    states.push(told(
        "scaled to zero",
        status(&zero, observed_of(&zero, Some(&none))),
        "Healthy",
        "Current",
    ));
    let (p, stable, candidate) = canary_at_generation_2();
    let (waiting, failed) = canary_verdicts(&p);
    for (state, verdict, health, kstatus) in [
        ("canary analysing", &waiting, "Progressing", "InProgress"),
        ("canary rolled back", &failed, "Degraded", "Failed"),
    ] {
        let object = canary_computed(
            &p,
            &candidate,
            &stable,
            Progress::Judged(verdict),
            Stage::Analysing,
        );
        states.push(told(state, object, health, kstatus));
    }
    states
}

/// The kstatus tier: the real kstatus library (`sigs.k8s.io/cli-utils`, `dev/kstatus`) over every
/// Predictor state, beside health.lua: refused and rolled back are Failed, rolling out and analysing
/// InProgress, not observed yet InProgress, settled Current. The testdata agree with ArgoCD's verdicts
/// in `health_test.yaml` one for one; the computed states say where they differ.
#[test]
#[ignore = "needs kstatus (Go): ./dev/test runs it"]
fn kstatus_and_health_lua_tell_a_gitops_user_the_same_on_every_state() {
    let cases: HealthTests =
        serde_saphyr::from_str(&read("health_test.yaml")).expect("health_test.yaml parses");
    let mut states: Vec<Told> = cases
        .tests
        .iter()
        .map(|case| {
            let health = HEALTH_CODES
                .into_iter()
                .find(|h| *h == case.health_status.status)
                .expect("a health code");
            Told {
                state: case.input_path.clone(),
                object: yaml_file(&case.input_path),
                health,
                kstatus: kstatus_of(health),
            }
        })
        .collect();
    states.extend(computed_states());
    let objects: Vec<serde_json::Value> = states.iter().map(|s| s.object.clone()).collect();
    let verdicts = kstatus::kstatus(&objects);

    let script = health_lua();
    let mut failures = Vec::new();
    eprintln!("| state | health.lua (ArgoCD) | kstatus (Flux, kpt) | kstatus' message |");
    eprintln!("|---|---|---|---|");
    for (s, verdict) in states.iter().zip(&verdicts) {
        let health = run_health(&script, &s.object).expect("health.lua runs");
        let told = verdict["status"].as_str().unwrap_or("?");
        eprintln!(
            "| {} | {} | {told} | {} |",
            s.state,
            health.status,
            verdict["message"].as_str().unwrap_or("")
        );
        if health.status != s.health || told != s.kstatus {
            failures.push(format!(
                "{}: expected {} / {}, got {} / {told} ({})",
                s.state, s.health, s.kstatus, health.status, verdict["message"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
