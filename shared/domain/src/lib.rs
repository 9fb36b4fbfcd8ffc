//! The OAuth rules, sans IO: plain types and functions, no store, no clock, no network.
//! Everything here is tested with tables of cases.

pub mod access;
pub mod admin;
pub mod assertion;
pub mod audit;
pub mod authorize;
pub mod cimd;
pub mod claims;
pub mod client;
pub mod client_auth;
pub mod client_update;
pub mod code;
pub mod consent;
pub mod console;
pub mod csrf;
pub mod device;
pub mod dpop;
pub mod exchange;
pub mod grant;
pub mod grant_type;
pub mod group;
pub mod id;
pub mod id_jag;
pub mod introspection;
pub mod jwk;
pub mod net;
pub mod params;
pub mod scope;
pub mod secret;
pub mod session;
pub mod tenant;
pub mod user;
pub mod workload;
