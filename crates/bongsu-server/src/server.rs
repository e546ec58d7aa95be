//! Start-up, serving and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bongsu_state::{NewToken, StateStore};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::routes::router;
use crate::state::AppState;
use crate::{Error, Result};

/// A started server: listener bound, state opened, first-start token created; not yet serving
/// and not yet ready. Add metrics sources and shutdown hooks through [`Server::state`], then
/// call [`Server::serve`].
#[derive(Debug)]
pub struct Server {
    state: AppState,
    listener: TcpListener,
    admin_token: Option<NewToken>,
}

impl Server {
    /// Binds `server.listen`, opens `<data_dir>/state.db` (creating and migrating it), opens
    /// the embedded stream in `<data_dir>/stream` (recovering it after a crash, creating the
    /// built-in topics) and, on the first start of a data directory, creates the admin token.
    pub async fn start(config: Config) -> Result<Server> {
        let addr = config.server.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let data_dir = config.server.data_dir.clone();
        let store = blocking(move || StateStore::open(&data_dir)).await??;
        let store = Arc::new(store);
        let stream = crate::stream::open(&config.server.stream_dir(), &config.stream).await?;
        let state = AppState::new(config, store.clone());
        state.add_metrics_source(Arc::new(crate::stream::StreamMetricsSource(stream.clone())));
        state.attach_stream(stream.clone());
        // Registered before the stream's hook: the store stops consuming and flushes first.
        let metrics_store = crate::tsdb_consumer::start(&state, stream.clone()).await?;
        state.attach_metrics_store(metrics_store);
        // Before the stream's hook, so that the receivers drain into the open stream.
        crate::syslog::attach(&state, stream.clone()).await?;
        // Before the stream's hook: the logs consumer's hook still fetches and commits.
        crate::logs_consumer::start(&state, stream.clone()).await?;
        // Before the stream's hook: scraping stops before the stream closes.
        crate::scrape::start(&state, stream.clone()).await?;
        crate::agents::recover_agents(&state).await?;
        crate::agents::spawn_checkpoints(state.clone());
        crate::allocator::spawn_trim();
        state.add_shutdown_hook("stream", move || async move {
            stream.shutdown().await;
        });
        let now = state.clock().now_ms();
        let admin_token = blocking(move || store.bootstrap_admin_token(now)).await??;
        if let Some(t) = &admin_token {
            tracing::info!(id = t.info.id, "first start: created the admin token");
        }
        Ok(Server {
            state,
            listener,
            admin_token,
        })
    }

    /// The bound address (the real port when `server.listen` asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(Error::Serve)
    }

    /// The shared state, to add metrics sources and shutdown hooks before serving.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The admin token created by this start, once; `None` on later starts.
    pub fn take_admin_token(&mut self) -> Option<NewToken> {
        self.admin_token.take()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully (see [`run`]).
    pub async fn serve<F>(self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        run(self.listener, self.state, shutdown).await
    }
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))
}

/// Serves `state`'s router on an already-bound listener until `shutdown` completes.
///
/// Readiness turns on when serving starts. When `shutdown` completes: readiness turns off, the
/// listener stops accepting, in-flight requests get `server.shutdown_timeout` to finish (then
/// their connections are dropped), and the shutdown hooks run in registration order with
/// another `server.shutdown_timeout` between them. Returns an error if serving failed or a hook
/// did not finish in time.
pub async fn run<F>(listener: TcpListener, state: AppState, shutdown: F) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = router(state.clone());
    let timeout = state.config().server.shutdown_timeout;
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let signal_state = state.clone();
    let signal = async move {
        shutdown.await;
        signal_state.set_ready(false);
        tracing::info!("shutting down: draining in-flight requests");
        let _ = signalled_tx.send(());
    };
    // Ready before the serving task exists, so a shutdown signal that fires at once is never
    // followed by a stale "ready".
    state.set_ready(true);
    tracing::info!("ready");
    let mut serving = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
    });

    let served = tokio::select! {
        r = &mut serving => Some(r),
        _ = signalled_rx => None,
    };
    let served = match served {
        Some(r) => r,
        None => match tokio::time::timeout(timeout, &mut serving).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(
                    timeout = ?timeout,
                    "in-flight requests did not finish within server.shutdown_timeout: closing them"
                );
                serving.abort();
                Ok(Ok(()))
            }
        },
    };
    state.set_ready(false);
    let hooks = run_shutdown_hooks(&state, timeout).await;
    match served {
        Ok(Ok(())) => hooks,
        Ok(Err(e)) => Err(Error::Serve(e)),
        Err(e) => Err(Error::Task(e.to_string())),
    }
}

async fn run_shutdown_hooks(state: &AppState, budget: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut late = Vec::new();
    for hook in state.take_shutdown_hooks() {
        tracing::info!(hook = %hook.name, "running shutdown hook");
        let fut = (hook.run)();
        if tokio::time::timeout_at(deadline, fut).await.is_err() {
            tracing::error!(hook = %hook.name, "shutdown hook did not finish within server.shutdown_timeout");
            late.push(hook.name);
        }
    }
    if late.is_empty() {
        tracing::info!("shutdown complete");
        Ok(())
    } else {
        Err(Error::ShutdownTimeout(late.join(", ")))
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}
