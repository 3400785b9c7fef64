//! Signals: SIGTERM/SIGINT stop, SIGHUP reloads the config, SIGUSR1 turns lockdown on. An
//! in-process instance (`airlock run`) stops when told instead.

/// What stops the proxy.
pub enum Stop {
    /// SIGTERM or SIGINT (`airlock start`).
    Signals,
    /// The caller says when (`airlock run`, once its command exits).
    When(tokio::sync::oneshot::Receiver<()>),
}

/// What a signal asks for.
pub enum SignalEvent {
    Stop,
    Reload,
    Lockdown,
}

pub enum SignalWaiter {
    Signals {
        term: tokio::signal::unix::Signal,
        int: tokio::signal::unix::Signal,
        hup: tokio::signal::unix::Signal,
        usr1: tokio::signal::unix::Signal,
    },
    When(Option<tokio::sync::oneshot::Receiver<()>>),
}

impl SignalWaiter {
    pub fn new(stop: Stop) -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        match stop {
            Stop::When(rx) => SignalWaiter::When(Some(rx)),
            Stop::Signals => SignalWaiter::Signals {
                term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
                int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
                hup: signal(SignalKind::hangup()).expect("SIGHUP handler"),
                usr1: signal(SignalKind::user_defined1()).expect("SIGUSR1 handler"),
            },
        }
    }

    pub async fn next(&mut self) -> SignalEvent {
        match self {
            SignalWaiter::When(rx) => {
                match rx.as_mut() {
                    Some(r) => {
                        let _ = r.await;
                        *rx = None;
                    }
                    None => std::future::pending::<()>().await,
                }
                SignalEvent::Stop
            }
            SignalWaiter::Signals {
                term,
                int,
                hup,
                usr1,
            } => tokio::select! {
                _ = term.recv() => SignalEvent::Stop,
                _ = int.recv() => SignalEvent::Stop,
                _ = hup.recv() => SignalEvent::Reload,
                _ = usr1.recv() => SignalEvent::Lockdown,
            },
        }
    }
}
