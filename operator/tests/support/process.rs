//! Process supervision for tests: every program a test starts runs in its own process group, dies
//! with the thread that started it (`PR_SET_PDEATHSIG`), and is stopped (SIGTERM, then SIGKILL) when
//! its [`Proc`] is dropped or, for what a whole binary shares, when the test process exits (`atexit`).
//! Outside services start through their dev/ [`launcher`], the one the dev scripts use too.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use super::files::repo_root;
use super::wait::poll;

/// Process groups and directories to clean up at exit, whatever happens to the owners.
pub(crate) static REGISTRY: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

pub(crate) enum Cleanup {
    Group(i32),
    Dir(PathBuf),
}

extern "C" fn cleanup_at_exit() {
    let items: Vec<Cleanup> = match REGISTRY.lock() {
        Ok(mut r) => r.drain(..).collect(),
        Err(_) => return,
    };
    let groups: Vec<i32> = items
        .iter()
        .filter_map(|c| match c {
            Cleanup::Group(g) => Some(*g),
            Cleanup::Dir(_) => None,
        })
        .collect();
    stop_groups(&groups);
    for item in items {
        if let Cleanup::Dir(d) = item {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub(crate) fn register(item: Cleanup) {
    ATEXIT.call_once(|| unsafe {
        libc::atexit(cleanup_at_exit);
    });
    REGISTRY.lock().expect("registry").push(item);
}

fn unregister_group(pgid: i32) {
    if let Ok(mut r) = REGISTRY.lock() {
        r.retain(|c| !matches!(c, Cleanup::Group(g) if *g == pgid));
    }
}

/// SIGTERM to each group, up to 10 s for them to go, then SIGKILL.
fn stop_groups(groups: &[i32]) {
    for &g in groups {
        unsafe { libc::kill(-g, libc::SIGTERM) };
    }
    let _ = poll(Duration::from_secs(10), "process groups to exit", || {
        (!groups.iter().any(|&g| group_alive(g))).then_some(())
    });
    for &g in groups {
        if group_alive(g) {
            unsafe { libc::kill(-g, libc::SIGKILL) };
        }
    }
}

fn group_alive(pgid: i32) -> bool {
    // Reap our own children so they do not linger as zombies (which still count as alive).
    unsafe {
        while libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        libc::kill(-pgid, 0) == 0
    }
}

/// A process started in its own group, killed with its group when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with output to `log`, in a new process group, dying with its parent thread.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        // Appends: a restarted component keeps the log of its earlier life.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        without_proxy(&mut cmd);
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        register(Cleanup::Group(child.id() as i32));
        Proc {
            name: name.into(),
            child,
            log: log.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) used so far, from /proc.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some(ticks / hz)
    }

    /// Whether the process still runs (reaps it if it exited).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `n` lines of its log, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends SIGKILL (no chance to clean up, like an OOM kill or a node loss) and reaps it.
    pub fn kill(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        self.child.wait().expect("wait for killed process")
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        poll(timeout, "exit", || self.child.try_wait().ok().flatten()).ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        stop_groups(&[pgid]);
        let _ = self.child.try_wait();
        unregister_group(pgid);
    }
}

/// `bash <library> <function>`: a function of a dev/ launcher library (e.g. `dev/registry.sh`), with
/// the arguments the caller adds. A function that starts a service writes its config and `exec`s it,
/// so the process spawned is the service itself and its [`Proc`] owns it as it would the binary. The
/// dev scripts start their services with the same functions: one launcher per outside service.
pub fn launcher(library: &str, function: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join(library)).arg(function);
    cmd
}

/// Loopback only: never let a proxy setting route test traffic elsewhere.
pub fn without_proxy(cmd: &mut Command) {
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
}

pub fn wait_output(mut child: Child, timeout: Duration, what: &str) -> Output {
    // Read pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let status = poll(timeout, what, || child.try_wait().expect("wait for child")).unwrap_or_else(
        |timed_out| {
            let _ = child.kill();
            panic!("{timed_out} to finish");
        },
    );
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// Runs `cmd` to completion; panics with its stderr unless it succeeds. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Something a whole test binary shares (a cluster, an operator), started once by `start` on a
/// thread that lives as long as the process: children die with the thread that started them
/// (`PR_SET_PDEATHSIG`), so the starter must not be a test's thread. A failed start fails every
/// test that asks, with the reason.
pub fn shared_by_binary<T: Send + Sync + 'static>(
    cell: &'static OnceLock<Result<T, String>>,
    start: fn() -> T,
) -> &'static T {
    let result = cell.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("shared-by-binary".into())
            .spawn(move || {
                let shared = std::panic::catch_unwind(start).map_err(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "shared cluster start panicked".into())
                });
                let _ = tx.send(shared);
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn cluster thread");
        rx.recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|e| Err(format!("shared cluster did not start: {e}")))
    });
    match result {
        Ok(shared) => shared,
        Err(e) => panic!("shared test cluster is unavailable: {e}"),
    }
}
