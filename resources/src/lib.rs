//! Agora's resource model: what agents offer, what tasks use, and the arithmetic the
//! master, the agents and the scheduler SDK share.
//!
//! Owns: the resource and attribute types, their rules, arithmetic and every external
//! form (flag text, JSON, protobuf). Must never: do I/O, read the clock, be async, use
//! `unsafe`, or panic on any input. Every refusal is a [`ResourceError`] whose message
//! (lowercase) quotes the offending item and says why, e.g.
//! `invalid resource 'gpus:1.5': gpus must be a whole number`.
//!
//! # Model
//!
//! * [`Scalar`]: a non-negative fixed-point amount in **thousandths** (`1.5` is 1500).
//!   Decimal text is parsed exactly (never through floating point) and rounded half-up on
//!   the fourth decimal (`1.5123` is `1.512`, `1.5125` is `1.513`). The largest accepted
//!   value is [`Scalar::MAX`] = 10^12 units (10^15 thousandths); anything larger, and any
//!   sum that would exceed it, is refused with an "overflows" error.
//! * [`Ranges`]: sorted, disjoint, coalesced inclusive `u64` ranges (`[1-2,3-4]` is
//!   `[1-4]`).
//! * Sets: sorted unique words (`{a,b,c}`); a repeated item in input is an error.
//! * [`Resource`]: a name, a [`Value`], an optional [`Reservation`] (`None` = unreserved,
//!   written `*`), a `revocable` flag and an optional persistent [`Volume`] (persistence
//!   id and container path; only on reserved, non-revocable `disk`).
//! * [`Resources`]: a normalised bag (see below). Scalars add; ranges and sets add by
//!   union, so `(a + b) - b == a` holds whenever `a` and `b` share no range value or set
//!   item (always for scalars).
//! * [`Attributes`]: named facts about an agent (text, scalar, ranges or set), sorted by
//!   name, one per name. They are never allocated.
//!
//! ## Rules every resource follows
//!
//! * Name: non-empty, `[A-Za-z0-9_.-]+`.
//! * Built-in names have a fixed type: `cpus`, `gpus`, `mem` (MB), `disk` (MB) are
//!   scalars, `ports` is ranges. Any other name is a custom resource of any type, but one
//!   name has one type across a bag (`foo:1;foo:[1-2]` is an error).
//! * `gpus` are whole numbers.
//! * Set items, principals, label keys and label values (which may be empty), and
//!   attribute text are words of `[A-Za-z0-9_.-/@+]`, so that everything can be written
//!   back in the text syntax.
//! * Roles follow [`validate_role`]: `/`-separated segments of `[A-Za-z0-9_.-]+`, no
//!   segment `.` or `..` or starting with `-`; `*` is not a role. Roles are hierarchical:
//!   [`Resources::allocatable_to`]`("eng/ml")` includes reservations for `eng` and
//!   `eng/ml`, not for `eng/ml2` or `eng/ml/x`.
//! * A static reservation (from the agent's flag) has no principal and no labels; only a
//!   dynamic one may carry them.
//! * A volume is only on `disk` with a reservation (static or dynamic), never revocable.
//!   Its persistence id is a name (`[A-Za-z0-9_.-]+`, not `.` or `..`); its container path
//!   is relative, of `/`-separated names, none empty, `.` or `..`.
//!
//! These rules are enforced identically by the text parser, the JSON reader,
//! [`Resources::from_proto`] (untrusted input) and [`Resources::push`].
//!
//! ## Normal form and canonical order
//!
//! A [`Resources`] holds at most one entry per (name, reservation, revocable, volume); entries of
//! the same slot add up; zero scalars, empty ranges and empty sets are dropped (so
//! `cpus:0` is accepted and yields nothing). Entries are kept in the **canonical order**,
//! which is also the order of `Display`, JSON and protobuf output:
//!
//! 1. unreserved entries first, then reserved ones ordered by role, then static before
//!    dynamic, then principal (none first), then labels;
//! 2. within that, non-revocable before revocable;
//! 3. then by name: `cpus`, `gpus`, `mem`, `disk`, `ports`, then every other name in
//!    byte order;
//! 4. then plain before volumes, volumes by persistence id, then container path.
//!
//! So `cpus:30;gpus:2;mem:122880;disk:921600;ports:[80,21000-29000];bugs:{a,b,c}` and
//! `cpus:4;mem:2048;cpus(spark):8;mem(spark):4096` are canonical and print back exactly,
//! while `bugs:{c,a};cpus:1` prints as `cpus:1;bugs:{a,c}`. For every bag `r`,
//! `Resources::parse(&r.to_string()) == Ok(r)`.
//!
//! # Text syntax (agent flags)
//!
//! ```text
//! resources  := item ( ';' item )*            whitespace around tokens is ignored
//! item       := name [ '(' qualifiers ')' ] ':' value
//! qualifiers := role ( ',' qualifier )*        role "*" = unreserved
//! qualifier  := 'dynamic' | 'principal=' P | 'label=' K '=' V | 'revocable'
//!             | 'volume=' ID | 'path=' P           (volume= and path= together)
//! value      := scalar | '[' range ( ',' range )* ']' | '{' item ( ',' item )* '}'
//! range      := N | N '-' N
//! scalar     := digits [ '.' digits ]          (no sign, no exponent)
//! ```
//!
//! Examples: `cpus:30;gpus:2;mem:122880;disk:921600;ports:[80,21000-29000];bugs:{a,b,c}`,
//! `cpus:4;mem:2048;cpus(spark):8;mem(spark):4096` (static reservation for role `spark`),
//! `cpus(spark,dynamic,principal=ops,label=team=ml):4`, `cpus(*,revocable):2`,
//! `disk(db,dynamic,principal=ops,volume=data1,path=store):100` (a persistent volume).
//!
//! Details:
//!
//! * Qualifiers after the role may come in any order, each at most once (labels once per
//!   key); they are printed as role, `dynamic`, `principal=`, `label=`s by key,
//!   `volume=`, `path=`, `revocable`. `principal=` and `label=` require `dynamic`; `*` cannot be `dynamic`.
//! * The same name with the same qualifiers adds up (`cpus:1;cpus:2` is `cpus:3`).
//! * Empty items (`cpus:1;;mem:2;`) are ignored; the empty text is the empty bag.
//!   `[]` and `{}` are accepted as empty values (and, like zero, yield nothing).
//! * A single-value range prints alone: `[80,21000-29000]`.
//! * Refused, with the item quoted: negative values (`cpus:-1`), reversed ranges
//!   (`ports:[30-20]`), fractional gpus (`gpus:1.5`), non-numbers (`mem:abc`), duplicate
//!   set items (`bugs:{a,a}`), unbalanced brackets or parentheses, an empty name, values
//!   that overflow, mixed value types, invalid roles, unknown qualifiers.
//!
//! Attributes (`--attributes`) use `name ':' value` items separated by `;`, without
//! qualifiers: `rack:rack-2;datacenter:china;os:centosv7.2`. A value is ranges if
//! `[..]`, a set if `{..}`, a scalar if it is a non-negative decimal (`8`, `1.5`),
//! otherwise text. A name given twice is an error. They print sorted by name.
//!
//! # JSON form
//!
//! [`Resources`] (serde `Serialize` / `Deserialize`, [`Resources::to_json`],
//! [`Resources::from_json`]) is an array of resource objects in canonical order; a single
//! [`Resource`] is one such object:
//!
//! ```json
//! [
//!   {"name": "cpus", "scalar": 1.5},
//!   {"name": "ports", "ranges": [[80, 80], [21000, 29000]]},
//!   {"name": "bugs", "set": ["a", "b"]},
//!   {"name": "mem", "scalar": 4096,
//!    "reservation": {"type": "dynamic", "role": "spark", "principal": "ops",
//!                    "labels": {"team": "ml"}}},
//!   {"name": "cpus", "scalar": 2, "revocable": true}
//! ]
//! ```
//!
//! * Exactly one of `scalar` (a JSON number), `ranges` (an array of inclusive
//!   `[begin, end]` pairs) or `set` (an array of strings).
//! * `reservation` is optional (absent = unreserved). Its `type` is `"static"` or
//!   `"dynamic"` (default `"static"`); `role` is required; `principal` and `labels` (an
//!   object of strings) are optional and only allowed for `"dynamic"`.
//! * `revocable` is optional (default `false`; written only when `true`).
//! * `volume` is optional: `{"persistence_id": "data1", "container_path": "store"}`.
//! * Unknown fields are refused.
//! * Scalars are written as integers when whole and as decimals otherwise; they are read
//!   exactly from the number's decimal text (an exponent such as `2e3` is allowed), with
//!   the same half-up rounding and limits as the text syntax. (The JSON reader holds
//!   fractional numbers as doubles, so a number written with more than 15 significant
//!   digits may round differently from the same digits in the text syntax.)
//!
//! Reading goes through the same validating constructors as the text parser, so a JSON
//! document is accepted exactly when the equivalent text would be.
//!
//! [`Attributes`] (and [`Attribute`]) use the same shape with `text` as a fourth value
//! kind: `[{"name": "rack", "text": "rack-2"}, {"name": "cores", "scalar": 8}]`.
//!
//! # Protobuf
//!
//! [`Resources::to_proto`] / [`Resources::from_proto`] and
//! [`Attributes::to_proto`] / [`Attributes::from_proto`] convert to and from
//! `agora_proto::v1::{Resource, Attribute}`. Scalars travel as thousandths; the
//! reservation type must be `STATIC` or `DYNAMIC` (unspecified is refused); an empty
//! principal means none. The `disk` (persistent volume) field is outside this model:
//! it is ignored on input and left unset on output.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod attributes;
pub mod compact;
mod error;
mod json;
mod names;
mod parse;
mod proto;
mod ranges;
mod reservation;
mod resource;
mod resources;
mod role;
mod scalar;
mod value;
mod volume;

pub use attributes::{Attribute, AttributeValue, Attributes};
pub use compact::CompactResources;
pub use error::ResourceError;
pub use ranges::Ranges;
pub use reservation::{Reservation, ReservationKind};
pub use resource::Resource;
pub use resources::Resources;
pub use role::validate_role;
pub use scalar::Scalar;
pub use value::Value;
pub use volume::Volume;
