//! How many dial jobs this node can take from the store now: operators' jobs up to
//! its free operators, robot calls up to its free channels and the pacer's rate.
//!
//! Several nodes share one store; a node that claims more than it can serve holds
//! jobs another node could make at once (until it serves them or its lease runs
//! out). So each poll asks [`Room::of`] what the core has free:
//!
//! - **operators' jobs** ([`Crew::Operator`](crate::store::Crew)): the ready,
//!   registered operators not on a call, less everything already waiting for one
//!   (residents in the queue come first, then people the informer put through,
//!   operator-first hand-offs and the operators' jobs already held), and only of
//!   the tenants those operators serve: a job no free operator here could take
//!   stays for a node whose operators can;
//! - **robot calls** ([`Crew::Robot`](crate::store::Crew)): the channels free
//!   beyond those kept for residents' incoming calls, and no more than the pacer
//!   lets start until the next poll, less the robot calls already held;
//! - both within the most the core holds in all (`max_held`: 256 jobs), and
//!   nothing while draining.
//!
//! The arithmetic is plain data in, data out; [`CallControl::claim_room`] reads the
//! figures from the core.

use std::time::Duration;

use super::control::CallControl;
use crate::store::TenantScope;

/// What the core has free and what already waits for it (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// Ready, registered operators not on or offered a call.
    pub free_operators: usize,
    /// The tenants the free operators serve between them (all, when one of them
    /// serves every tenant).
    pub free_operators_serve: TenantScope,
    /// What already waits for an operator: residents in the queue, informer
    /// transfers, operator-first hand-offs and the operators' jobs held.
    pub waiting_for_operator: usize,
    /// Channels free for a new call (trunks' channels or the engine's limit, less
    /// the calls in progress).
    pub free_channels: usize,
    /// Channels kept for residents' incoming calls.
    pub inbound_reserve: usize,
    /// Robot calls held, waiting for the pacer or a channel.
    pub held_robots: usize,
    /// Robot calls the pacer lets start per second.
    pub robot_rate: f64,
    /// How long until the next claim (the pacer's share counts this far ahead).
    pub poll: Duration,
    /// Dial jobs held in all (waiting or being dialled).
    pub held_jobs: usize,
    /// The most the core holds.
    pub max_held: usize,
    /// Draining: no new work at all.
    pub draining: bool,
}

/// How many jobs of each crew to claim now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Jobs an operator makes.
    pub operator_jobs: usize,
    /// Of which tenants (jobs of no tenant always).
    pub operator_tenants: TenantScope,
    /// Robot calls.
    pub robot_jobs: usize,
}

impl Default for Room {
    fn default() -> Self {
        Self {
            operator_jobs: 0,
            operator_tenants: TenantScope::All,
            robot_jobs: 0,
        }
    }
}

impl Room {
    /// The room `capacity` leaves (see the module doc).
    pub fn of(capacity: &Capacity) -> Self {
        if capacity.draining {
            return Self::default();
        }
        let headroom = capacity.max_held.saturating_sub(capacity.held_jobs);
        let operator_jobs = capacity
            .free_operators
            .saturating_sub(capacity.waiting_for_operator)
            .min(headroom);
        let channels = capacity
            .free_channels
            .saturating_sub(capacity.inbound_reserve);
        let paced = paced_starts(capacity.robot_rate, capacity.poll);
        let robot_jobs = channels
            .min(paced)
            .saturating_sub(capacity.held_robots)
            .min(headroom - operator_jobs);
        Self {
            operator_jobs,
            operator_tenants: capacity.free_operators_serve.clone(),
            robot_jobs,
        }
    }

    /// Nothing to claim.
    pub fn is_empty(&self) -> bool {
        self.operator_jobs == 0 && self.robot_jobs == 0
    }
}

/// How many robot calls the pacer lets start within `poll` at `rate` a second (at
/// least one, so a slow rate still gets its call).
fn paced_starts(rate: f64, poll: Duration) -> usize {
    let starts = if rate.is_finite() && rate > 0.0 {
        (rate * poll.as_secs_f64()).ceil()
    } else {
        1.0
    };
    // Bounded: the cast saturates, and no poll needs more than a batch per second.
    (starts as usize).clamp(1, 100_000)
}

impl CallControl {
    /// What this core has free for dial jobs now (see the module doc).
    pub fn capacity(&self, max_held: usize) -> Capacity {
        let (free_operators, free_operators_serve) = self.operators.free_for_jobs();
        Capacity {
            free_operators,
            free_operators_serve,
            waiting_for_operator: self.waiting.len()
                + self.transfers.len()
                + self.handoffs.len()
                + self.jobs.len(),
            free_channels: self.free_channels(),
            inbound_reserve: self.config.follow_ups.inbound_reserve as usize,
            held_robots: self.robots.len(),
            robot_rate: self.config.follow_ups.broadcast_rate,
            poll: crate::dialer::POLL,
            held_jobs: self.held_jobs().len(),
            max_held,
            draining: self.draining,
        }
    }

    /// How many dial jobs of each crew this core can take now, holding at most
    /// `max_held` in all.
    pub fn claim_room(&self, max_held: usize) -> Room {
        Room::of(&self.capacity(max_held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node with two free operators, 30 free channels (5 kept for residents),
    /// robots paced at 5 a second, nothing held.
    fn idle() -> Capacity {
        Capacity {
            free_operators: 2,
            free_operators_serve: TenantScope::All,
            waiting_for_operator: 0,
            free_channels: 30,
            inbound_reserve: 5,
            held_robots: 0,
            robot_rate: 5.0,
            poll: Duration::from_secs(2),
            held_jobs: 0,
            max_held: 256,
            draining: false,
        }
    }

    #[test]
    fn an_idle_node_takes_one_job_per_free_operator_and_a_polls_worth_of_robot_calls() {
        let room = Room::of(&idle());
        assert_eq!(
            room,
            Room {
                operator_jobs: 2,
                operator_tenants: TenantScope::All,
                robot_jobs: 10
            }
        );
    }

    #[test]
    fn a_node_with_no_free_operator_takes_no_operators_job() {
        let room = Room::of(&Capacity {
            free_operators: 0,
            ..idle()
        });
        assert_eq!(room.operator_jobs, 0);
        assert_eq!(room.robot_jobs, 10, "robot calls need no operator");
    }

    #[test]
    fn residents_in_the_queue_and_held_work_speak_for_free_operators_first() {
        let busy = Capacity {
            free_operators: 3,
            waiting_for_operator: 2,
            ..idle()
        };
        assert_eq!(Room::of(&busy).operator_jobs, 1);
        let more_waiting_than_free = Capacity {
            waiting_for_operator: 7,
            ..busy
        };
        assert_eq!(Room::of(&more_waiting_than_free).operator_jobs, 0);
    }

    #[test]
    fn robot_calls_stop_at_the_channels_kept_for_residents() {
        let nearly_full = Capacity {
            free_channels: 8,
            ..idle()
        };
        assert_eq!(Room::of(&nearly_full).robot_jobs, 3);
        let at_reserve = Capacity {
            free_channels: 5,
            ..idle()
        };
        assert_eq!(Room::of(&at_reserve).robot_jobs, 0);
        let beyond = Capacity {
            free_channels: 2,
            ..idle()
        };
        assert_eq!(Room::of(&beyond).robot_jobs, 0);
    }

    #[test]
    fn robot_calls_held_already_count_against_the_pacers_share() {
        let held = Capacity {
            held_robots: 7,
            held_jobs: 7,
            ..idle()
        };
        assert_eq!(Room::of(&held).robot_jobs, 3);
        let slow = Capacity {
            robot_rate: 0.1,
            ..idle()
        };
        assert_eq!(
            Room::of(&slow).robot_jobs,
            1,
            "a slow rate still gets its call"
        );
        let broken = Capacity {
            robot_rate: f64::NAN,
            ..idle()
        };
        assert_eq!(Room::of(&broken).robot_jobs, 1);
    }

    #[test]
    fn the_total_held_stays_within_the_cap_operators_jobs_first() {
        let nearly_full = Capacity {
            held_jobs: 253,
            ..idle()
        };
        assert_eq!(
            Room::of(&nearly_full),
            Room {
                operator_jobs: 2,
                operator_tenants: TenantScope::All,
                robot_jobs: 1
            }
        );
        let full = Capacity {
            held_jobs: 300,
            ..idle()
        };
        assert!(Room::of(&full).is_empty());
    }

    #[test]
    fn operators_jobs_are_claimed_only_for_the_tenants_the_free_operators_serve() {
        let etalon_only = Capacity {
            free_operators_serve: TenantScope::Only(vec!["etalon".into()]),
            ..idle()
        };
        assert_eq!(
            Room::of(&etalon_only).operator_tenants,
            TenantScope::Only(vec!["etalon".into()])
        );
    }

    #[test]
    fn a_draining_node_takes_nothing() {
        let draining = Capacity {
            draining: true,
            ..idle()
        };
        assert!(Room::of(&draining).is_empty());
    }
}
