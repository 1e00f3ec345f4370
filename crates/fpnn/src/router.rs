//! Method routing: a map from method name to an async handler, shared by the server (for
//! quests from clients) and the client (for quests the server pushes).

use crate::error::{code, ErrorAnswer};
use crate::value::{from_value, to_value, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What a handler returns: the answer's body, or an error answer.
pub type HandlerResult = Result<Value, ErrorAnswer>;

/// A boxed handler future.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;

type DynHandler<C> = Arc<dyn Fn(C, Value) -> HandlerFuture + Send + Sync>;

/// Maps method names to async handlers that receive a context `C` and the quest's payload.
///
/// A handler returns `Ok(body)` for a normal answer or `Err(ErrorAnswer)` for an error answer.
/// For one-way quests the result is dropped. A handler that panics is answered with
/// 20001 (`CORE_UNKNOWN_ERROR`), like a C++ handler that throws.
pub struct Router<C> {
    routes: HashMap<String, DynHandler<C>>,
    fallback: Option<DynFallback<C>>,
}

type DynFallback<C> = Arc<dyn Fn(C, &str, Value) -> HandlerFuture + Send + Sync>;

impl<C> Default for Router<C> {
    fn default() -> Self {
        Router {
            routes: HashMap::new(),
            fallback: None,
        }
    }
}

impl<C> Clone for Router<C> {
    fn clone(&self) -> Self {
        Router {
            routes: self.routes.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<C: Send + 'static> Router<C> {
    /// An empty router.
    pub fn new() -> Self {
        Router::default()
    }

    /// Routes `method` to a handler of the raw payload map.
    pub fn route<F, Fut>(mut self, method: impl Into<String>, handler: F) -> Self
    where
        F: Fn(C, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler: DynHandler<C> = Arc::new(move |ctx, params| Box::pin(handler(ctx, params)));
        self.routes.insert(method.into(), handler);
        self
    }

    /// Routes `method` to a handler of a typed payload.
    ///
    /// The payload is deserialised into `P` first; a missing key is answered with 10009, a
    /// value of the wrong type with 10010, as the C++ framework does. The handler's `R` is
    /// serialised as the answer.
    pub fn route_typed<P, R, F, Fut>(self, method: impl Into<String>, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(C, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ErrorAnswer>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.route(method, move |ctx, params: Value| {
            let typed = from_value::<P>(&params);
            let handler = handler.clone();
            async move {
                let params = typed.map_err(|e| ErrorAnswer::new(e.code(), e.to_string()))?;
                let answer = handler(ctx, params).await?;
                to_value(&answer).map_err(|e| ErrorAnswer::new(code::CORE_ENCODING, e.to_string()))
            }
        })
    }

    /// Handles every method that has no route of its own; it receives the method name.
    /// Without a fallback, such quests are answered 20004 (unknown method).
    pub fn fallback<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(C, &str, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.fallback = Some(Arc::new(move |ctx, method, params| {
            Box::pin(handler(ctx, method, params))
        }));
        self
    }

    /// `true` when `method` has a handler.
    pub fn contains(&self, method: &str) -> bool {
        self.routes.contains_key(method)
    }

    /// Starts the handler of `method`, if there is one. The future never panics: a panicking
    /// handler yields a 20001 error answer.
    pub(crate) fn dispatch(&self, method: &str, ctx: C, params: Value) -> Option<HandlerFuture> {
        // A panic while *creating* the future is caught too.
        let created = match (self.routes.get(method), &self.fallback) {
            (Some(handler), _) => {
                std::panic::catch_unwind(AssertUnwindSafe(|| handler(ctx, params)))
            }
            (None, Some(fallback)) => {
                std::panic::catch_unwind(AssertUnwindSafe(|| fallback(ctx, method, params)))
            }
            (None, None) => return None,
        };
        Some(match created {
            Ok(future) => Box::pin(CatchUnwind(future)),
            Err(_) => Box::pin(std::future::ready(Err(panicked()))),
        })
    }
}

fn panicked() -> ErrorAnswer {
    ErrorAnswer::new(code::CORE_UNKNOWN_ERROR, "handler panicked")
}

/// Turns a panic inside a handler future into an error answer.
struct CatchUnwind(HandlerFuture);

impl Future for CatchUnwind {
    type Output = HandlerResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<HandlerResult> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Err(panicked())),
        }
    }
}
