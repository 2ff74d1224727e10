//! A mailbox that outlives its actor.
//!
//! ractor's mailbox dies with the actor: whatever was queued when an actor panicked is gone.
//! For the actors that must lose nothing (Incidents, each Notifier), senders put messages here
//! and only *wake* the actor; the Supervisor keeps the inbox and hands it to the replacement,
//! which carries on where the old one stopped. This is what an Erlang supervisor does with an
//! ETS table it inherits from a dying child.
//!
//! A message leaves the inbox only once it has been handled, so a panic while handling it
//! means the next incarnation gets it again; a message that keeps failing is dropped after
//! [`MAX_ATTEMPTS`], so that one poisonous message cannot keep an actor crashing forever.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// Handling attempts before a message is given up as poison.
pub const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug)]
pub struct Inbox<T> {
    queue: Mutex<VecDeque<(T, u32)>>,
}

impl<T: Clone> Default for Inbox<T> {
    fn default() -> Self {
        Inbox { queue: Mutex::new(VecDeque::new()) }
    }
}

impl<T: Clone> Inbox<T> {
    pub fn push(&self, message: T) {
        self.queue.lock().push_back((message, 0));
    }

    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.lock().is_empty()
    }

    /// The oldest message, to handle now; it stays queued until [`Inbox::done`]. Messages that
    /// already failed [`MAX_ATTEMPTS`] times are dropped on the way, and handed back as poison.
    pub fn next(&self) -> Option<Result<T, T>> {
        let mut queue = self.queue.lock();
        let (message, attempts) = queue.front_mut()?;
        if *attempts >= MAX_ATTEMPTS {
            let (poison, _) = queue.pop_front()?;
            return Some(Err(poison));
        }
        *attempts += 1;
        Some(Ok(message.clone()))
    }

    /// The message last returned by [`Inbox::next`] was handled.
    pub fn done(&self) {
        self.queue.lock().pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_stays_until_handled() {
        let inbox = Inbox::default();
        inbox.push(1);
        inbox.push(2);
        assert_eq!(inbox.next(), Some(Ok(1)));
        // A crash here: the replacement sees the same message again.
        assert_eq!(inbox.next(), Some(Ok(1)));
        inbox.done();
        assert_eq!(inbox.next(), Some(Ok(2)));
        inbox.done();
        assert_eq!(inbox.next(), None);
    }

    #[test]
    fn a_message_that_keeps_failing_is_given_up() {
        let inbox = Inbox::default();
        inbox.push("poison");
        inbox.push("fine");
        for _ in 0..MAX_ATTEMPTS {
            assert_eq!(inbox.next(), Some(Ok("poison")));
        }
        assert_eq!(inbox.next(), Some(Err("poison")));
        assert_eq!(inbox.next(), Some(Ok("fine")));
        assert_eq!(inbox.len(), 1);
    }
}
