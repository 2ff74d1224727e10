// Copyright (c) Sean Lawlor
//
// This source code is licensed under both the MIT license found in the
// LICENSE-MIT file in the root directory of this source tree.

//! Shared concurrency primitives utilized within the library for different frameworks (tokio, async-std, etc)

/// A timeout error
#[derive(Debug)]
pub struct Timeout;
impl std::error::Error for Timeout {}
impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Timeout")
    }
}

/// A notification
pub type Notify = tokio::sync::Notify;

/// A one-use sender
pub type OneshotSender<T> = tokio::sync::oneshot::Sender<T>;
/// A one-use receiver
pub type OneshotReceiver<T> = tokio::sync::oneshot::Receiver<T>;

/// A bounded MP;SC sender
pub type MpscSender<T> = tokio::sync::mpsc::Sender<T>;
/// A bounded MP;SC receiver
pub type MpscReceiver<T> = tokio::sync::mpsc::Receiver<T>;

/// A bounded MP;SC sender
pub type MpscUnboundedSender<T> = tokio::sync::mpsc::UnboundedSender<T>;
/// A bounded MP;SC receiver
pub type MpscUnboundedReceiver<T> = tokio::sync::mpsc::UnboundedReceiver<T>;

/// A bounded broadcast sender
pub type BroadcastSender<T> = tokio::sync::broadcast::Sender<T>;
/// A bounded broadcast receiver
pub type BroadcastReceiver<T> = tokio::sync::broadcast::Receiver<T>;

/// MPSC bounded channel
pub fn mpsc_bounded<T>(buffer: usize) -> (MpscSender<T>, MpscReceiver<T>) {
    tokio::sync::mpsc::channel(buffer)
}

/// MPSC unbounded channel
pub fn mpsc_unbounded<T>() -> (MpscUnboundedSender<T>, MpscUnboundedReceiver<T>) {
    tokio::sync::mpsc::unbounded_channel()
}

/// Oneshot channel
pub fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    tokio::sync::oneshot::channel()
}

/// Broadcast channel
pub fn broadcast<T: Clone>(buffer: usize) -> (BroadcastSender<T>, BroadcastReceiver<T>) {
    tokio::sync::broadcast::channel(buffer)
}

#[cfg(all(
    not(all(target_arch = "wasm32", target_os = "unknown")),
    not(feature = "async-std")
))]
pub mod tokio_primitives;
#[cfg(all(
    not(all(target_arch = "wasm32", target_os = "unknown")),
    not(feature = "async-std")
))]
pub use self::tokio_primitives::*;

#[cfg(all(
    not(all(target_arch = "wasm32", target_os = "unknown")),
    feature = "async-std"
))]
pub mod async_std_primitives;
#[cfg(all(
    not(all(target_arch = "wasm32", target_os = "unknown")),
    feature = "async-std"
))]
pub use self::async_std_primitives::*;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub mod wasm_browser_primitives;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub use self::wasm_browser_primitives::*;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod target_specific {
    pub(crate) use web_time::SystemTime;
}
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
mod target_specific {
    pub(crate) use std::time::SystemTime;
}

pub(crate) use target_specific::SystemTime;

/// An actor's port for messages and supervision events: an unbounded MPSC channel (futures'),
/// with the part of tokio's `UnboundedSender`/`UnboundedReceiver` API the actor uses.
///
/// statusd's patch: tokio's unbounded channel allocates its first 32-slot block and its
/// cache-padded state when it is created, ≈ 1.3 KB per channel for messages and ≈ 3 KB for
/// supervision events, two channels per actor, most of them never used (an actor without
/// children never receives a supervision event). futures' channel allocates one node per
/// message in flight and ≈ 0.1 KB of state.
pub(crate) mod port {
    use futures::channel::mpsc;

    pub(crate) use tokio::sync::mpsc::error::{SendError, TryRecvError};

    /// The sending half; cloned freely.
    pub(crate) struct PortSender<T>(mpsc::UnboundedSender<T>);

    impl<T> Clone for PortSender<T> {
        fn clone(&self) -> Self {
            Self(self.0.clone())
        }
    }

    impl<T> PortSender<T> {
        /// Queues a message; gives it back if the receiver is closed or gone.
        pub(crate) fn send(&self, message: T) -> Result<(), SendError<T>> {
            self.0
                .unbounded_send(message)
                .map_err(|e| SendError(e.into_inner()))
        }
    }

    /// The receiving half, owned by the actor's loop.
    pub(crate) struct PortReceiver<T>(mpsc::UnboundedReceiver<T>);

    impl<T> PortReceiver<T> {
        /// The next message, or `None` once every sender is gone (or the port is closed) and
        /// nothing is queued. Cancel-safe, as tokio's: dropping the future loses nothing.
        ///
        /// Spends the task's budget as tokio's own channels do (the wrapper that
        /// `tokio::task::coop::cooperative`'s documentation gives for futures' channels): an
        /// actor whose mailbox stays full yields to the scheduler every 128 messages instead
        /// of holding its worker thread until the mailbox is empty.
        pub(crate) async fn recv(&mut self) -> Option<T> {
            #[cfg(all(
                feature = "tokio_runtime",
                not(all(target_arch = "wasm32", target_os = "unknown"))
            ))]
            let received = tokio::task::coop::cooperative(self.0.recv()).await;
            #[cfg(not(all(
                feature = "tokio_runtime",
                not(all(target_arch = "wasm32", target_os = "unknown"))
            )))]
            let received = self.0.recv().await;
            received.ok()
        }

        /// A queued message without waiting.
        pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
            self.0.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => TryRecvError::Empty,
                _ => TryRecvError::Disconnected,
            })
        }

        /// Refuses further messages; what is queued can still be received.
        pub(crate) fn close(&mut self) {
            self.0.close()
        }
    }

    /// A new port.
    pub(crate) fn port<T>() -> (PortSender<T>, PortReceiver<T>) {
        let (tx, rx) = mpsc::unbounded();
        (PortSender(tx), PortReceiver(rx))
    }
}
