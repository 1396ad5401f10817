//! `pinwatch run`: the daemon. Attaches everything doctor finds available, correlates events
//! for as long as it runs, serves Prometheus metrics, logs findings as JSON lines, and on
//! SIGTERM or SIGINT detaches every probe and exits 0.
//!
//! Threads: the pump (ring buffer → correlation → metrics and log) runs on its own thread and
//! owns the eBPF session, so dropping it on the way out detaches everything. The HTTP server
//! and signal handling run on a single-threaded tokio runtime.

pub mod catalog;
mod findings_log;
mod inventory;
mod metrics;
mod notify;
mod server;

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    attach::MethodChoice, counters::Counters, error::Error, exit, heap, kernel, pipeline::Pipeline,
    session::Session,
};
use findings_log::FindingsLog;
use inventory::InventoryGauges;
use metrics::Metrics;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9469";

/// The levels of work `run --bench-mode` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BenchMode {
    /// Everything: the programs, the records, correlation, metrics and findings.
    #[default]
    Full,
    /// The programs run and send their records; the daemon reads and discards them.
    KernelOnly,
    /// Every hook attached, every program returning at once: what the attachments alone cost.
    Floor,
}

pub struct Options {
    pub btf_path: PathBuf,
    pub method: MethodChoice,
    pub listen: SocketAddr,
    pub findings_log: Option<PathBuf>,
    pub bench_mode: BenchMode,
}

/// How often kernel counters and correlation state reach the metrics.
const TICK: Duration = Duration::from_secs(1);
/// A finding is logged once no event has added to it for this long.
const QUIET: Duration = Duration::from_secs(2);

pub fn run(opts: &Options) -> Result<u8, Error> {
    // The address is taken before anything is loaded: a busy port costs no probes.
    let listener = TcpListener::bind(opts.listen).map_err(|source| Error::Listen {
        addr: opts.listen,
        source,
    })?;
    listener.set_nonblocking(true).map_err(Error::Serve)?;
    let log = FindingsLog::open(opts.findings_log.as_deref())?;
    heap::tune_for_daemon();
    // Before any hook is attached: the pins that predate pinwatch, as /proc shows them.
    let before = inventory::take();
    let programs = crate::loader::Programs {
        track_spawns: false,
        idle: opts.bench_mode == BenchMode::Floor,
    };
    let mut session = Session::open(&opts.btf_path, opts.method, "run", programs)?;
    if opts.bench_mode != BenchMode::Full {
        log::warn!(
            bench_mode:? = opts.bench_mode;
            "measuring pinwatch's own cost: nothing is observed or reported"
        );
    }
    let hazards = crate::observability::require_observable(&session)?;
    let metrics = Metrics::new(&session.foll_flags, &kernel::release());
    metrics.attachments(&session.attachments, &hazards);
    metrics.ready(session.ready_at);
    let mut pins = InventoryGauges::new(&metrics.registry());
    pins.set(before.as_ref());
    // Attached: from here on only stacks are symbolized, and the start-up parsing is garbage.
    session.kallsyms.drop_attach_index();
    heap::trim();
    announce(opts, &session, &hazards);
    serve(
        listener,
        session,
        (metrics, pins),
        log,
        opts.bench_mode == BenchMode::KernelOnly,
    )
}

/// Says what is attached and observable (the log, and systemd's readiness notification).
fn announce(opts: &Options, session: &Session, hazards: &[crate::observability::HazardStatus]) {
    let attached = session.attachments.iter().filter(|a| a.attached).count();
    log::info!(
        hooks_attached = attached,
        hooks = session.attachments.len(),
        listen:% = opts.listen;
        "serving http://{}/metrics", opts.listen
    );
    if opts.listen.ip().is_unspecified() {
        log::warn!(listen:% = opts.listen; "listening on every interface, as --listen asked");
    }
    for a in &session.attachments {
        match (&a.attached, &a.reason) {
            (true, _) => log::debug!(
                hook = a.hook,
                symbol = a.symbol.as_deref().unwrap_or("-"),
                method = a.method_family().map_or("none", |m| m.name());
                "hook attached"
            ),
            (false, Some(reason)) => {
                log::info!(hook = a.hook, reason:% = reason; "hook not attached");
            }
            (false, None) => log::info!(hook = a.hook; "hook not attached"),
        }
    }
    for h in hazards.iter().filter(|h| !h.observable) {
        log::warn!(
            hazard = h.id.id(), missing:% = h.missing.join(","); "hazard not observable on this kernel"
        );
    }
    let since = humantime::format_rfc3339_millis(session.ready_at);
    if let Err(e) = notify::notify(&format!(
        "READY=1\nSTATUS=observing with {attached} hooks since {since}"
    )) {
        log::warn!(error:% = e; "cannot tell systemd pinwatch is ready (NOTIFY_SOCKET)");
    }
}

/// Serves the metrics while the pump thread drains the kernel, until a signal (or the pump
/// failing) stops both; every hook is detached on the way out.
fn serve(
    listener: TcpListener,
    session: Session,
    (metrics, pins): (Metrics, InventoryGauges),
    log: FindingsLog,
    discard: bool,
) -> Result<u8, Error> {
    let registry = metrics.registry();
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let pump = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("pinwatch-pump".into())
            .spawn(move || {
                let result = pump(session, (metrics, pins), log, &stop, discard);
                let _ = done_tx.send(());
                result
            })
            .map_err(Error::Serve)?
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Serve)?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let shutdown = async move {
            let why = wait_for_stop(done_rx).await;
            log::info!(reason = why; "stopping; detaching every hook");
        };
        axum::serve(listener, server::router(registry))
            .with_graceful_shutdown(shutdown)
            .await
    });
    stop.store(true, Ordering::Relaxed);
    let detached = pump.join().expect("the pump thread does not panic")?;
    served.map_err(Error::Serve)?;
    log::info!(hooks_detached = detached; "exiting");
    Ok(exit::OK)
}

/// Resolves on SIGTERM or SIGINT, or when the pump stops on its own (an error). SIGHUP is
/// logged and ignored: `run` has no configuration to reload, and says so instead of dying.
async fn wait_for_stop(pump_done: tokio::sync::oneshot::Receiver<()>) -> &'static str {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return "cannot install signal handlers";
    };
    tokio::pin!(pump_done);
    loop {
        tokio::select! {
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
            _ = hup.recv() => log::warn!(
                signal = "SIGHUP"; "ignored: nothing is reloaded; restart pinwatch to change its flags"
            ),
            _ = &mut pump_done => return "the event pump stopped",
        }
    }
}

/// Ring buffer → correlation → metrics and findings log, and the pins inventory every
/// `inventory::INTERVAL`, until `stop`. Returns how many
/// hooks were detached when the session was dropped.
fn pump(
    mut session: Session,
    (mut metrics, mut pins): (Metrics, InventoryGauges),
    mut log: FindingsLog,
    stop: &AtomicBool,
    discard: bool,
) -> Result<usize, Error> {
    let mut pipeline = Pipeline::new(&mut session)?;
    pipeline.discard_records(discard);
    let mut next_tick = Instant::now();
    let result = loop {
        pipeline.pump(&session, &mut metrics);
        if Instant::now() >= next_tick {
            next_tick += TICK;
            if let Err(e) = tick(&session, &mut pipeline, &mut metrics, &mut log) {
                break Err(e);
            }
            pins.refresh_if_due(Instant::now());
        }
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        pipeline.wait();
    };
    // Whatever is still pending is logged before the probes go.
    pipeline.pump(&session, &mut metrics);
    let (findings, _, _) = pipeline.finish();
    for f in &findings {
        metrics.finding(f);
        log.write(f)?;
    }
    result?;
    let hooks = session.attachments.iter().filter(|a| a.attached).count();
    drop(session);
    Ok(hooks)
}

fn tick(
    session: &Session,
    pipeline: &mut Pipeline,
    metrics: &mut Metrics,
    log: &mut FindingsLog,
) -> Result<(), Error> {
    metrics.kernel_counters(&Counters::read(&session.ebpf)?);
    metrics.correlation(&pipeline.correlator, pipeline.decode_errors());
    for f in pipeline.take_settled(QUIET) {
        log::debug!(hazard = f.hazard.id(), tgid = f.process.tgid, pages = f.pages; "finding");
        metrics.finding(&f);
        log.write(&f)?;
    }
    // What a burst of events allocated goes back once it is processed.
    heap::trim();
    Ok(())
}
