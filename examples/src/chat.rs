//! The chat service: every message any client sends reaches every connected
//! client, whichever worker core each is on.
//!
//! Each worker registers an inbox (a bounded crossbeam channel plus a `Notify`)
//! with the process-wide [`Hub`]; a message is pushed once to every worker's
//! inbox — the only cross-core hop — and a task on each worker fans it out to
//! that worker's clients.
//!
//! Slow readers: each client has a bounded queue of [`CLIENT_QUEUE`] messages.
//! A client that lets it fill up (it stopped reading and flow control stopped
//! our sends) is disconnected with RESOURCE_EXHAUSTED rather than allowed to
//! grow server memory; a worker whose inbox is full drops the message for its
//! clients. Nothing in the room is unbounded.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};

use ringrpc_service_api::{Request, ResponseSink, Status, Streaming};
use tokio::sync::Notify;

use crate::server::chat::chat_server::{Chat, ChatServer};
use crate::server::chat::ChatMessage;

/// Messages a client may have waiting before it is disconnected as too slow.
pub const CLIENT_QUEUE: usize = 256;
/// Messages a worker's inbox holds before new ones are dropped for that worker.
pub const WORKER_INBOX: usize = 4096;

struct WorkerInbox {
    tx: crossbeam_channel::Sender<ChatMessage>,
    notify: Arc<Notify>,
}

/// The process-wide room: one inbox per worker.
#[derive(Default)]
pub struct Hub {
    workers: Mutex<Vec<WorkerInbox>>,
}

impl Hub {
    /// A room with no workers yet.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    fn broadcast(&self, message: &ChatMessage) {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for worker in workers.iter() {
            if worker.tx.try_send(message.clone()).is_ok() {
                worker.notify.notify_one();
            }
        }
    }

    /// The per-worker service factory for `Server::add_service`: registers the
    /// worker's inbox and starts its fan-out task (it runs on the worker thread).
    pub fn service_factory(
        self: &Arc<Hub>,
    ) -> impl Fn() -> ChatServer<ChatRoom> + Send + Sync + 'static {
        let hub = self.clone();
        move || {
            let (tx, rx) = crossbeam_channel::bounded(WORKER_INBOX);
            let notify = Arc::new(Notify::new());
            hub.workers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(WorkerInbox {
                    tx,
                    notify: notify.clone(),
                });
            let local = Rc::new(LocalClients::default());
            tokio::task::spawn_local(fan_out(rx, notify, local.clone()));
            ChatServer::new(ChatRoom {
                hub: hub.clone(),
                local,
            })
        }
    }
}

#[derive(Default)]
struct LocalClients {
    clients: RefCell<Vec<Weak<ClientQueue>>>,
}

#[derive(Default)]
struct ClientQueue {
    messages: RefCell<VecDeque<ChatMessage>>,
    overflowed: Cell<bool>,
    ready: Notify,
}

async fn fan_out(
    rx: crossbeam_channel::Receiver<ChatMessage>,
    notify: Arc<Notify>,
    local: Rc<LocalClients>,
) {
    loop {
        notify.notified().await;
        while let Ok(message) = rx.try_recv() {
            let mut clients = local.clients.borrow_mut();
            clients.retain(|c| c.strong_count() > 0);
            for client in clients.iter().filter_map(Weak::upgrade) {
                let mut queue = client.messages.borrow_mut();
                if queue.len() >= CLIENT_QUEUE {
                    client.overflowed.set(true);
                } else {
                    queue.push_back(message.clone());
                }
                client.ready.notify_one();
            }
        }
    }
}

/// The chat service of one worker.
pub struct ChatRoom {
    hub: Arc<Hub>,
    local: Rc<LocalClients>,
}

impl Chat for ChatRoom {
    async fn join(
        &self,
        request: Request<Streaming<ChatMessage>>,
        mut responses: ResponseSink<ChatMessage>,
    ) -> Result<(), Status> {
        let queue = Rc::new(ClientQueue::default());
        self.local.clients.borrow_mut().push(Rc::downgrade(&queue));
        let mut incoming = request.into_inner();
        loop {
            tokio::select! {
                message = incoming.message() => match message? {
                    Some(message) => self.hub.broadcast(&message),
                    None => return Ok(()),
                },
                _ = queue.ready.notified() => {
                    if queue.overflowed.get() {
                        return Err(Status::resource_exhausted("client too slow: disconnected"));
                    }
                    loop {
                        let next = queue.messages.borrow_mut().pop_front();
                        let Some(message) = next else { break };
                        responses.send(message).await?;
                    }
                }
            }
        }
    }
}
