// Tests of the shedding registry: priority order, remaining-bytes targets, isolation of panicking shedders,
// re-entrant registration, the busy guard, and the trimmer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{Shedders, TrimOutcome, Trimmer};

type Calls = Arc<Mutex<Vec<(&'static str, u64)>>>;

fn recorder(calls: &Calls, name: &'static str, frees: u64) -> impl Fn(u64) -> u64 + Send + Sync + 'static {
    let calls = Arc::clone(calls);
    move |asked| {
        calls.lock().expect("calls").push((name, asked));
        frees
    }
}

#[test]
fn lowest_priority_first_remaining_bytes_and_stop_when_enough() {
    let s = Shedders::new();
    let calls: Calls = Arc::default();
    s.register("expensive", 100, recorder(&calls, "expensive", 1000));
    s.register("cheap", -5, recorder(&calls, "cheap", 300));
    s.register("medium", 10, recorder(&calls, "medium", 500));
    let report = s.shed(700);
    assert_eq!(*calls.lock().expect("calls"), [("cheap", 700), ("medium", 400)], "stops once 800 >= 700");
    assert_eq!(report.freed_bytes, 800);
    assert!(report.met_target() && !report.skipped_busy);
    let steps: Vec<_> = report.steps.iter().map(|st| (st.name.as_str(), st.asked_bytes, st.freed_bytes)).collect();
    assert_eq!(steps, [("cheap", 700, 300), ("medium", 400, 500)]);

    calls.lock().expect("calls").clear();
    let report = s.shed(5000);
    assert_eq!(*calls.lock().expect("calls"), [("cheap", 5000), ("medium", 4700), ("expensive", 4200)]);
    assert_eq!(report.freed_bytes, 1800);
    assert!(!report.met_target());

    let stats = s.stats();
    assert_eq!((stats.runs, stats.freed_bytes_total), (2, 2600));
    let per: Vec<_> = stats.shedders.iter().map(|x| (x.name.as_str(), x.freed_bytes, x.calls)).collect();
    assert_eq!(per, [("cheap", 600, 2), ("expensive", 1000, 1), ("medium", 1000, 2)]);
}

#[test]
fn panicking_shedder_is_isolated() {
    let s = Shedders::new();
    let calls: Calls = Arc::default();
    s.register("bad", 0, |_| panic!("cache corrupted"));
    s.register("good", 1, recorder(&calls, "good", 100));
    let report = s.shed(100);
    assert_eq!(report.steps.len(), 2);
    assert!(report.steps[0].panicked && report.steps[0].freed_bytes == 0);
    assert_eq!((report.steps[1].asked_bytes, report.freed_bytes), (100, 100));
    // The registry still works, and the bad shedder keeps being asked (and caught).
    let id = s.register("later", 2, |_| 0);
    assert!(s.unregister(id));
    let report = s.shed(50);
    assert!(report.steps[0].panicked);
    let bad = s.stats().shedders.into_iter().find(|x| x.name == "bad").expect("bad stats");
    assert_eq!((bad.calls, bad.panics, bad.freed_bytes), (2, 2, 0));
}

#[test]
fn shedder_may_unregister_and_register_from_inside() {
    let s = Arc::new(Shedders::new());
    let later_calls = Arc::new(AtomicUsize::new(0));
    let later_id = {
        let later_calls = Arc::clone(&later_calls);
        s.register("later", 10, move |_| {
            later_calls.fetch_add(1, Ordering::SeqCst);
            0
        })
    };
    let own_id: Arc<Mutex<Option<u64>>> = Arc::default();
    let id = {
        let (weak, own_id) = (Arc::downgrade(&s), Arc::clone(&own_id));
        s.register("one-shot", 0, move |_| {
            if let Some(s) = weak.upgrade() {
                // Unregister itself and a later shedder, and register a new one, mid-run.
                let me = own_id.lock().expect("id").take();
                assert!(me.is_some_and(|me| s.unregister(me)));
                assert!(s.unregister(later_id));
                s.register("new", 5, |_| 1);
            }
            10
        })
    };
    *own_id.lock().expect("id") = Some(id);
    let report = s.shed(100);
    let names: Vec<_> = report.steps.iter().map(|st| st.name.as_str()).collect();
    assert_eq!(names, ["one-shot"], "the unregistered shedder is skipped; the new one waits for the next run");
    assert_eq!(later_calls.load(Ordering::SeqCst), 0);
    assert_eq!(s.len(), 1);
    let report = s.shed(100);
    assert_eq!(report.steps.iter().map(|st| st.name.as_str()).collect::<Vec<_>>(), ["new"]);
    assert!(!s.unregister(id), "already gone");
}

#[test]
fn second_concurrent_shed_is_skipped_busy() {
    let s = Arc::new(Shedders::new());
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (entered_tx, release_rx) = (Mutex::new(entered_tx), Mutex::new(release_rx));
    let runs = Arc::new(AtomicU64::new(0));
    let r = Arc::clone(&runs);
    s.register("slow", 0, move |want| {
        r.fetch_add(1, Ordering::SeqCst);
        entered_tx.lock().expect("tx").send(()).expect("send");
        release_rx.lock().expect("rx").recv().expect("recv");
        want
    });
    let first = {
        let s = Arc::clone(&s);
        thread::spawn(move || s.shed(1000))
    };
    entered_rx.recv().expect("first run entered the shedder");
    let second = {
        let s = Arc::clone(&s);
        thread::spawn(move || s.shed(500)).join().expect("second")
    };
    assert!(second.skipped_busy && second.steps.is_empty() && second.freed_bytes == 0);
    release_tx.send(()).expect("release");
    let first = first.join().expect("first");
    assert!(!first.skipped_busy && first.freed_bytes == 1000);
    // Free again afterwards.
    let third = thread::spawn({
        let s = Arc::clone(&s);
        move || s.shed(10)
    });
    entered_rx.recv().expect("third entered");
    release_tx.send(()).expect("release");
    assert!(!third.join().expect("third").skipped_busy);
    let stats = s.stats();
    assert_eq!((stats.runs, stats.skipped_busy, runs.load(Ordering::SeqCst)), (2, 1, 2));
}

#[test]
fn trimmer_rate_limits_and_counts() {
    let s = Shedders::with_trimmer(Trimmer::new(Duration::from_secs(10), true));
    let t0 = Instant::now();
    let first = s.trimmer().maybe_trim(t0);
    if !Trimmer::is_supported() {
        assert_eq!(first, TrimOutcome::Unsupported);
        return;
    }
    assert!(matches!(first, TrimOutcome::Trimmed { .. }));
    assert_eq!(s.trimmer().maybe_trim(t0 + Duration::from_secs(3)), TrimOutcome::RateLimited);
    assert!(matches!(s.trimmer().maybe_trim(t0 + Duration::from_secs(11)), TrimOutcome::Trimmed { .. }));
    assert_eq!(s.stats().trims, 2);
    assert_eq!(Shedders::with_trimmer(Trimmer::disabled()).trimmer().maybe_trim(t0), TrimOutcome::Disabled);
}

#[test]
fn stats_serialize() {
    let s = Shedders::new();
    s.register("a \"quoted\" cache", 0, |w| w);
    s.shed(10);
    let json = serde_json::to_string(&s.stats()).expect("json");
    assert!(json.contains("\"freed_bytes_total\":10"), "{json}");
}
