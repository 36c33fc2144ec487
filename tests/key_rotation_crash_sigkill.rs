//! SIGKILL crash loop for key rotation below the root key: a child process (this test binary
//! again, running the `#[ignore]`d `crash_child_rotates_under_writes_until_killed`) opens a
//! vault whose root key comes from a key file, and while a writer thread appends messages
//! (printing `ack <tenant> <conversation> <id> <n>` once each append has returned) the main
//! thread rotates keys in a loop: per tenant a tenant KEK rotation, a data-key rotation (of the
//! whole tenant, or of one conversation) and a re-seal in small batches followed by the
//! retirement of the old versions, printing `step <name>` before each call. The parent kills it
//! with SIGKILL after a random delay (at start, or inside a random step), then:
//!
//! - reopens the vault from the key file (it must open);
//! - requires `verify` to be clean and every acknowledged message to read back exactly;
//! - requires nothing half-rotated: a raw listing of the `keys` column family shows exactly one
//!   version of every tenant KEK and of every conversation key (rotations replace them in one
//!   batch), and every wrapped key unwraps (`verify`);
//! - every other time, finishes the rotation in flight itself ([`Vault::reseal`] resumes an
//!   interrupted data-key rotation, re-seals and retires): afterwards no rotation is pending,
//!   every record is under the current versions, `verify` is clean and every acknowledged
//!   message reads back (the other times the next child resumes it).
//!
//! Default: 12 kills (a few seconds in a debug build). `CHATVAULT_CRASH_ITERS=N` for long runs;
//! `CHATVAULT_CRASH_SEED=S` replays a run's delays (timing still varies).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use chatvault::{
    Actor, ConversationId, ConversationKind, ErasurePolicy, NewMessage, ResealOptions,
    StaticKeyProvider, TenantId, TenantOptions, UserProfile, Vault, VaultOptions,
};
use common::DAY;
use rand::{rngs::StdRng, Rng, SeedableRng};

const ENV_DIR: &str = "CHATVAULT_ROTATE_CHILD_DIR";
const ENV_SEED: &str = "CHATVAULT_ROTATE_CHILD_SEED";
const CHILD_TEST: &str = "crash_child_rotates_under_writes_until_killed";
const MARK: &str = "ROTLOOP ";
const D0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY;
const TENANTS: usize = 2;
const USERS: usize = 3;
const CONVS: usize = 2;
/// Appends per child run (the vault grows by at most this much per kill).
const APPENDS_PER_CHILD: u64 = 150;

fn body(n: u64) -> String {
    format!("message {n} {}", "x".repeat((n % 7) as usize * 5))
}

/// The world: tenant, conversation and user ids by index, in a file beside the vault.
#[derive(serde::Serialize, serde::Deserialize)]
struct World {
    tenants: Vec<(TenantId, Vec<ConversationId>, Vec<chatvault::UserId>)>,
}

fn read_world(dir: &Path) -> World {
    let bytes = hex::decode(std::fs::read_to_string(dir.join("world")).unwrap().trim()).unwrap();
    postcard::from_bytes(&bytes).unwrap()
}

// ------------------------------------------------------------------------------------ child

#[test]
#[ignore = "run as a child process by key_rotation_crash_loop_sigkill"]
fn crash_child_rotates_under_writes_until_killed() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let seed: u64 = std::env::var(ENV_SEED).unwrap().parse().unwrap();
    let world = read_world(&dir);
    let say = |s: String| {
        let mut o = std::io::stdout().lock();
        writeln!(o, "{MARK}{s}").unwrap();
        o.flush().unwrap();
    };
    say("opening".into());
    let p = Arc::new(StaticKeyProvider::from_file(&dir.join("root.key")).unwrap());
    let v = Vault::open(dir.join("data"), p, VaultOptions::default()).unwrap();
    say("open".into());
    let next: u64 = std::fs::read_to_string(dir.join("next"))
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (v, stop) = (v.clone(), stop.clone());
        let tenants = world.tenants.clone();
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            // Message numbers of this child: `next..next + APPENDS_PER_CHILD` (the parent
            // moves `next` on after every run, so numbers never repeat).
            for n in next..next + APPENDS_PER_CHILD {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let ti = rng.gen_range(0..tenants.len());
                let (t, convs, users) = &tenants[ti];
                let ci = rng.gen_range(0..convs.len());
                let u = users[rng.gen_range(0..users.len())];
                // Old days, and sometimes a new day (a new epoch key during a rotation).
                let at = D0 + rng.gen_range(0..5) * DAY + n as i64;
                let id = v
                    .append(*t, convs[ci], NewMessage::text(u, at, body(n)))
                    .unwrap()
                    .stored()
                    .unwrap();
                let mut o = std::io::stdout().lock();
                writeln!(o, "{MARK}ack {ti} {ci} {id} {n}").unwrap();
                o.flush().unwrap();
                std::thread::sleep(Duration::from_micros(rng.gen_range(0..1500)));
            }
        })
    };
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let op = Actor::operator();
    let opts = ResealOptions {
        batch_records: 8,
        retire: true,
    };
    for round in 0..1_000 {
        for (ti, (t, convs, _)) in world.tenants.iter().enumerate() {
            say(format!("step kek {ti}"));
            v.rotate_tenant_kek(*t, op).unwrap();
            let scope = if rng.gen_bool(0.5) {
                None
            } else {
                Some(convs[rng.gen_range(0..convs.len())])
            };
            say(format!("step data {ti}"));
            v.rotate_data_keys(*t, scope, op).unwrap();
            say(format!("step reseal {ti}"));
            v.reseal(*t, scope, &opts, |_| {}).unwrap();
            // A tenant-wide re-seal also retires user key versions a conversation scope left.
            if scope.is_some() && round % 2 == 0 {
                say(format!("step reseal-tenant {ti}"));
                v.reseal(*t, None, &opts, |_| {}).unwrap();
            }
            say(format!("idle {ti}"));
        }
        if round > 50 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    say("finished".into());
}

// ------------------------------------------------------------------------------------ parent

/// Messages written when the world is made, per tenant (numbered from `INITIAL_N`), so that
/// re-seals have many batches to do.
const INITIAL: u64 = 120;
const INITIAL_N: u64 = 1 << 40;

type Acked = BTreeMap<(usize, usize, u64), u64>;

fn new_world(dir: &Path, acked: &mut Acked) -> World {
    let p = Arc::new(StaticKeyProvider::create_key_file(&dir.join("root.key")).unwrap());
    let v = Vault::create(dir.join("data"), p, VaultOptions::default()).unwrap();
    let mut tenants = Vec::new();
    for ti in 0..TENANTS {
        let policy = if ti == 0 {
            ErasurePolicy::MessagesUnreadable
        } else {
            ErasurePolicy::AuthorErased
        };
        let t = v
            .create_tenant(
                &format!("tenant-{ti}"),
                TenantOptions {
                    erasure_policy: policy,
                    ..Default::default()
                },
            )
            .unwrap();
        let users: Vec<_> = (0..USERS)
            .map(|u| {
                v.create_user(
                    t,
                    &format!("u{ti}-{u}"),
                    UserProfile::named(format!("U{u}")),
                )
                .unwrap()
            })
            .collect();
        let members: Vec<_> = users.iter().map(|u| (*u, 0)).collect();
        let convs: Vec<_> = (0..CONVS)
            .map(|c| {
                v.create_conversation(
                    t,
                    &format!("c{ti}-{c}"),
                    ConversationKind::Group,
                    None,
                    &members,
                )
                .unwrap()
            })
            .collect();
        for k in 0..INITIAL {
            let (ci, n) = (
                (k % CONVS as u64) as usize,
                INITIAL_N + ti as u64 * INITIAL + k,
            );
            let at = D0 + (k % 4) as i64 * DAY + k as i64;
            let u = users[(k % USERS as u64) as usize];
            let id = v
                .append(t, convs[ci], NewMessage::text(u, at, body(n)))
                .unwrap()
                .stored()
                .unwrap();
            acked.insert((ti, ci, id), n);
        }
        tenants.push((t, convs, users));
    }
    drop(v);
    let w = World { tenants };
    std::fs::write(
        dir.join("world"),
        hex::encode(postcard::to_stdvec(&w).unwrap()),
    )
    .unwrap();
    w
}

/// Versions stored per tenant KEK and per conversation key (raw listing; the vault closed).
fn key_versions(data: &Path) -> (BTreeMap<u64, usize>, BTreeMap<(u64, u64), usize>) {
    let db = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        data,
        chatvault::cf::ALL,
        false,
    )
    .unwrap();
    let cf = db.cf_handle(chatvault::cf::KEYS).unwrap();
    let be64 = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap());
    let (mut keks, mut convs) = (BTreeMap::new(), BTreeMap::new());
    for kv in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (k, _) = kv.unwrap();
        match k[0] {
            1 => *keks.entry(be64(&k[1..9])).or_default() += 1,
            2 => *convs.entry((be64(&k[1..9]), be64(&k[9..17]))).or_default() += 1,
            _ => {}
        }
    }
    (keks, convs)
}

#[derive(Default)]
struct Stats {
    kills: usize,
    at_start: usize,
    in_step: BTreeMap<String, usize>,
    finished: usize,
    resumed_by_parent: usize,
    acked: usize,
}

#[test]
fn key_rotation_crash_loop_sigkill() {
    let iters: usize = std::env::var("CHATVAULT_CRASH_ITERS")
        .ok()
        .map(|s| s.parse().expect("CHATVAULT_CRASH_ITERS: a number"))
        .unwrap_or(12);
    let seed: u64 = std::env::var("CHATVAULT_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("CHATVAULT_CRASH_SEED: a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("key rotation crash loop: {iters} kills, CHATVAULT_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let exe = std::env::current_exe().unwrap();
    let began = Instant::now();
    let mut st = Stats::default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // Acknowledged messages: (tenant index, conversation index, id) → message number.
    let mut acked: Acked = BTreeMap::new();
    let world = new_world(&dir, &mut acked);
    let mut next = 0u64;
    let mut step_times: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut runs = 0usize;
    while st.kills < iters {
        runs += 1;
        std::fs::write(dir.join("next"), next.to_string()).unwrap();
        let stderr_path = dir.join("child.stderr");
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(ENV_DIR, &dir)
            .env(ENV_SEED, rng.gen::<u64>().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<(Instant, String)>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                if let Some(p) = l.find(MARK) {
                    let _ = tx.send((Instant::now(), l[p + MARK.len()..].to_string()));
                }
            }
        });
        let mut lines: Vec<(Instant, String)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        // When to kill: a plain delay (start, open, the first steps), or a random time inside
        // the k-th step of a randomly chosen kind (scaled by that kind's measured duration).
        let kinds = ["kek", "data", "reseal"];
        let strategy = rng.gen_range(0..10);
        if strategy < 2 {
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..200_000)));
        } else {
            let kind = kinds[rng.gen_range(0..kinds.len())];
            let k = rng.gen_range(1..=3);
            let prefix = format!("step {kind} ");
            let mut seen = 0;
            let mut ok = true;
            while seen < k {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(x) => {
                        if x.1.starts_with(&prefix) {
                            seen += 1;
                        }
                        lines.push(x);
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        ok = false;
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => panic!("child made no progress"),
                }
            }
            if ok {
                let mean = step_times
                    .get(kind)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.iter().sum::<Duration>() / v.len() as u32)
                    .unwrap_or(Duration::from_millis(10));
                let us = (mean.as_micros() as u64 * 3 / 2).max(1);
                std::thread::sleep(Duration::from_micros(rng.gen_range(0..us)));
            }
        }
        let killed = match child.try_wait().unwrap() {
            Some(_) => false,
            None => {
                child.kill().unwrap(); // SIGKILL
                true
            }
        };
        let status = child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let child_err = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let finished = lines.iter().any(|(_, l)| l == "finished");
        if !killed {
            assert!(
                status.success() && finished,
                "child exited on its own ({status}) before finishing; seed {seed}; stderr:\n{}",
                child_err()
            );
            st.finished += 1;
        }
        // What the child acknowledged, and how long its steps took.
        let mut last_step: Option<(String, Instant)> = None;
        let mut last = String::new();
        for (at, l) in &lines {
            let w: Vec<&str> = l.split(' ').collect();
            match w[0] {
                "ack" => {
                    let (ti, ci, id, n) = (
                        w[1].parse().unwrap(),
                        w[2].parse().unwrap(),
                        w[3].parse().unwrap(),
                        w[4].parse().unwrap(),
                    );
                    assert!(
                        acked.insert((ti, ci, id), n).is_none(),
                        "id {id} acknowledged twice in {ti}/{ci}; seed {seed}"
                    );
                    continue;
                }
                "step" | "idle" | "finished" => {
                    if let Some((k, s)) = last_step.take() {
                        step_times.entry(k).or_default().push(*at - s);
                    }
                    if w[0] == "step" {
                        last_step = Some((w[1].to_string(), *at));
                    }
                }
                _ => {}
            }
            last = l.clone();
        }
        next += APPENDS_PER_CHILD;
        if killed {
            st.kills += 1;
            match last.split(' ').collect::<Vec<_>>().as_slice() {
                ["step", kind, ..] => *st.in_step.entry(kind.to_string()).or_default() += 1,
                _ => st.at_start += 1,
            }
        }

        // Reopen from the key file (recovering), close, list the keys raw.
        let data = dir.join("data");
        let open = || {
            let p = Arc::new(StaticKeyProvider::from_file(&dir.join("root.key")).unwrap());
            Vault::open(&data, p, VaultOptions::default()).unwrap_or_else(|e| {
                panic!(
                    "reopening after kill {} (last line {last:?}): {e}; seed {seed}; stderr:\n{}",
                    st.kills,
                    child_err()
                )
            })
        };
        drop(open());
        let (keks, convs) = key_versions(&data);
        for (t, _, _) in &world.tenants {
            assert_eq!(
                keks.get(&t.as_u64()),
                Some(&1),
                "tenant {t}: one KEK version after kill {} ({last:?}); seed {seed}",
                st.kills
            );
        }
        assert_eq!(convs.len(), TENANTS * CONVS, "{convs:?}");
        assert!(
            convs.values().all(|n| *n == 1),
            "one version per conversation key after kill {} ({last:?}): {convs:?}; seed {seed}",
            st.kills
        );
        let v = open();
        let check = |v: &Vault, when: &str| {
            let r = v.verify().unwrap();
            assert!(
                r.is_ok(),
                "verify {when} kill {} ({last:?}): {:?}; seed {seed}",
                st.kills,
                r.failures
            );
            for ((ti, ci, id), n) in &acked {
                let (t, cs, _) = &world.tenants[*ti];
                let m = v.get(*t, cs[*ci], *id).unwrap_or_else(|e| {
                    panic!(
                        "acknowledged message {ti}/{ci}/{id} {when} kill {} ({last:?}): {e}; \
                         seed {seed}",
                        st.kills
                    )
                });
                assert_eq!(m.body, body(*n), "{ti}/{ci}/{id}");
            }
        };
        check(&v, "after");
        // Every other time the parent finishes what was in flight (an operator resuming);
        // otherwise the next child's steps resume it.
        if runs % 2 == 0 {
            for (t, convs, _) in &world.tenants {
                for c in convs {
                    v.reseal(*t, Some(*c), &ResealOptions::default(), |_| {})
                        .unwrap();
                }
                let r = v
                    .reseal(*t, None, &ResealOptions::default(), |_| {})
                    .unwrap();
                assert_eq!(r.failed, 0);
            }
            let ks = v.key_stats().unwrap();
            assert_eq!(ks.data_key_rotations_pending, 0, "{ks:?}");
            for (t, _, _) in &world.tenants {
                let ts = &ks.tenants[t];
                assert_eq!(ts.older_versions, 0, "{t}: {ts:?}; seed {seed}");
            }
            check(&v, "resumed after");
            st.resumed_by_parent += 1;
        }
        drop(v);
    }
    st.acked = acked.len();
    let set: BTreeSet<u64> = acked.values().copied().collect();
    assert_eq!(set.len(), acked.len());
    println!(
        "key rotation crash loop: {} kills in {:.1} s (seed {seed}): {} at start/open, inside \
         steps {:?}; {} children finished; {} resumed by the parent; {} acknowledged messages \
         checked after every kill; mean step times {:?}",
        st.kills,
        began.elapsed().as_secs_f64(),
        st.at_start,
        st.in_step,
        st.finished,
        st.resumed_by_parent,
        st.acked,
        step_times
            .iter()
            .map(|(k, v)| (
                k.clone(),
                v.iter().sum::<Duration>() / v.len().max(1) as u32
            ))
            .collect::<BTreeMap<_, _>>(),
    );
}
