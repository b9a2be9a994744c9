//! One call of a role's module, as every pipeline phase makes it: the
//! serving module answers, the role's shadow candidate (when one runs and the
//! serving module is the partner's) is sampled on the same call, and a fault
//! or a denial becomes the [`Failure`] the client is answered with.
//!
//! The calls are the four of the WIT worlds: [`Validate`], [`Route`],
//! [`ShapeRequest`] and [`ShapeResponse`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use fhirgate_core::failure::Failure;
use fhirgate_sandbox::bindings::routing::Target;
use fhirgate_sandbox::bindings::shaping::{Exchange, Shaped, UpstreamRequest};
use fhirgate_sandbox::bindings::types::{Claims, Denial, Request};
use fhirgate_sandbox::{CallContext, GuestFault, Lease, Role};

use super::shadow::Run;
use super::{BoundModule, Policy};

/// What a module's call comes to: an answer, a denial, or a fault.
pub type Outcome<T> = Result<Result<T, Denial>, GuestFault>;

/// What a fault of the serving module is answered with instead of an error,
/// when the policy allows it (`on_fault = "pass-through"`).
pub type Fallback<'a, T> = Box<dyn FnOnce(&GuestFault) -> T + Send + 'a>;

/// A call a role's module answers, and how its shadow candidate answers the
/// same one.
pub trait Call: Send {
    type Answer: Send;
    const ROLE: Role;
    /// Which of the role's calls this is (a shaper's second is the answer):
    /// each is sampled for the shadow on its own.
    const INDEX: usize;
    /// Asks `serving`, through the request's instance of it.
    fn ask(&mut self, serving: &BoundModule, cx: CallContext) -> impl Future<Output = Outcome<Self::Answer>> + Send;
    fn shadow(&self, run: Run, cx: CallContext, served: &Outcome<Self::Answer>);
}

/// Runs `call` on `serving`, samples the role's shadow, and classifies the
/// outcome. `context` builds the call context of a module (the serving one,
/// then the candidate). `known` is the serving module's answer when it is
/// already known (a cached verdict): the module is not asked again, the
/// candidate still is. `on_fault` stands in for a fault of the serving module.
pub async fn invoke<C: Call>(
    policy: &Policy,
    serving: &BoundModule,
    context: &(dyn Fn(&BoundModule) -> CallContext + Sync),
    mut call: C,
    known: Option<C::Answer>,
    on_fault: Option<Fallback<'_, C::Answer>>,
) -> Result<C::Answer, Failure> {
    let outcome = match known {
        Some(answer) => Ok(Ok(answer)),
        None => call.ask(serving, context(serving)).await,
    };
    // The candidate stands in for the partner's module: tenants with their
    // own are not compared.
    if let Some(shadow) = policy.shadows.of(C::ROLE).as_ref()
        && std::ptr::eq(serving, policy.module(C::ROLE))
        && let Some(run) = shadow.sample(C::INDEX)
    {
        call.shadow(run, context(&shadow.bound), &outcome);
    }
    match outcome {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(d)) => Err(Failure::denial(C::ROLE, d.status, &d.code, &d.message)),
        Err(fault) => match on_fault {
            Some(fallback) => Ok(fallback(&fault)),
            None => Err(Failure::from_fault(C::ROLE, &fault)),
        },
    }
}

/// The token-validation module on a bearer token.
pub struct Validate<'a> {
    pub token: &'a str,
    pub request: &'a Request,
}

impl Call for Validate<'_> {
    /// Shared, as a verdict is cached and reused.
    type Answer = Arc<Claims>;
    const ROLE: Role = Role::TokenValidation;
    const INDEX: usize = 0;
    /// Always a fresh instance: the tenant an instance would be kept for is
    /// what the call decides.
    async fn ask(&mut self, serving: &BoundModule, cx: CallContext) -> Outcome<Arc<Claims>> {
        Ok(serving.module.validate(cx, self.token, self.request).await?.map(Arc::new))
    }
    fn shadow(&self, run: Run, cx: CallContext, served: &Outcome<Arc<Claims>>) {
        run.validate(cx, self.token, self.request, served);
    }
}

/// The routing module on an authenticated request.
pub struct Route<'a> {
    pub claims: &'a Claims,
    pub request: &'a Request,
}

impl Call for Route<'_> {
    type Answer = Target;
    const ROLE: Role = Role::Routing;
    const INDEX: usize = 0;
    async fn ask(&mut self, serving: &BoundModule, cx: CallContext) -> Outcome<Target> {
        serving.lease(&self.claims.tenant_id).route(cx, self.claims, self.request).await
    }
    fn shadow(&self, run: Run, cx: CallContext, served: &Outcome<Target>) {
        run.route(cx, self.claims, self.request, served);
    }
}

/// The shaping module on the upstream request the router chose.
pub struct ShapeRequest<'a> {
    /// The request's instance of the shaping module, for both its calls.
    pub lease: &'a mut Lease,
    pub tenant: &'a str,
    pub exchange: &'a Exchange,
    pub request: &'a UpstreamRequest,
}

impl Call for ShapeRequest<'_> {
    type Answer = UpstreamRequest;
    const ROLE: Role = Role::Shaping;
    const INDEX: usize = 0;
    fn ask(&mut self, _: &BoundModule, cx: CallContext) -> impl Future<Output = Outcome<UpstreamRequest>> + Send {
        self.lease.shape_request(cx, self.exchange, self.request)
    }
    fn shadow(&self, run: Run, cx: CallContext, served: &Outcome<UpstreamRequest>) {
        run.shape_request(cx, self.tenant, self.exchange, self.request, served);
    }
}

/// The shaping module on the provider's answer.
pub struct ShapeResponse<'a> {
    /// The instance that shaped the request, when this request made one.
    pub lease: &'a mut Lease,
    pub tenant: &'a str,
    pub exchange: &'a Exchange,
    pub status: u16,
    pub body: &'a Bytes,
}

impl Call for ShapeResponse<'_> {
    type Answer = Shaped;
    const ROLE: Role = Role::Shaping;
    const INDEX: usize = 1;
    fn ask(&mut self, _: &BoundModule, cx: CallContext) -> impl Future<Output = Outcome<Shaped>> + Send {
        self.lease.shape_response(cx, self.exchange, self.status, self.body)
    }
    fn shadow(&self, run: Run, cx: CallContext, served: &Outcome<Shaped>) {
        run.shape_response(cx, self.tenant, self.exchange, self.status, self.body.clone(), served);
    }
}
