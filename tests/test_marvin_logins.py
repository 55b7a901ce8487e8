"""The local Marvin's failed-login guard, on a clock the test moves."""

from __future__ import annotations

from trek_tasks.marvin.logins import FORGET_AFTER, MAX_DELAY, LoginGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail_until_slowed(guard: LoginGuard, clock: Clock, username: str, client: str) -> float:
    """Fail logins as soon as they are heard; the wait the first refused one gets."""
    while (wait := guard.admit(username, client)) == 0:
        pass
    return wait


def test_waits_double_after_five_free_failures_up_to_five_minutes() -> None:
    clock = Clock()
    guard = LoginGuard(clock)
    assert [guard.admit("alice", "10.0.0.1") for _ in range(5)] == [0.0] * 5
    waits = []
    for _ in range(12):
        wait = guard.admit("alice", "10.0.0.1")
        waits.append(wait)
        clock.now += wait
        assert guard.admit("alice", "10.0.0.1") == 0.0  # heard once the wait is over
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, MAX_DELAY, MAX_DELAY, MAX_DELAY]


def test_user_and_client_count_apart_and_a_success_clears_both() -> None:
    clock = Clock()
    guard = LoginGuard(clock)
    for index in range(5):
        guard.admit(f"user{index}", "10.0.0.1")
    assert guard.admit("bob", "10.0.0.1") == 1.0  # the address is slowed
    assert guard.admit("bob", "10.0.0.2") == 0.0  # bob is not
    guard.succeeded("bob", "10.0.0.2")
    clock.now += 1
    assert guard.admit("carol", "10.0.0.1") == 0.0
    guard.succeeded("carol", "10.0.0.1")
    assert [guard.admit("dave", "10.0.0.1") for _ in range(5)] == [0.0] * 5


def test_failures_are_forgotten_after_a_quiet_quarter_hour() -> None:
    clock = Clock()
    guard = LoginGuard(clock)
    assert fail_until_slowed(guard, clock, "alice", "10.0.0.1") == 1.0
    clock.now += FORGET_AFTER + 1
    assert [guard.admit("alice", "10.0.0.1") for _ in range(5)] == [0.0] * 5
    assert guard.admit("alice", "10.0.0.1") == 1.0
