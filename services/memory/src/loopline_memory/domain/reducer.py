"""The run reducer: a pure, idempotent fold of a run's events into its state.

`apply(state, event, env)` returns the next state and the events to emit. It reads no clock
(time comes from the events), so replaying a run's events rebuilds exactly the same state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from loopline_artifacts import INLINE_CHARS, reference
from loopline_events import (
    CONTEXTS,
    RESULTS,
    ApprovalDecided,
    ApprovalRequested,
    CancelRun,
    ContextAssembled,
    Envelope,
    FailRun,
    FailureReason,
    ForkRecorded,
    GoalRejected,
    GoalSubmitted,
    GuardHook,
    GuardTripped,
    Keyring,
    MemoryOutput,
    Message,
    ModelDecided,
    ModelFailed,
    Refused,
    RejectionReason,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunForked,
    RunSteered,
    ToolCallApproved,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolSpec,
    derived_id,
)
from loopline_runtime import AgentProfile, expand

from loopline_memory.domain import approvals, budgets, delegation, progress, served, window
from loopline_memory.domain.state import (
    Emission,
    Phase,
    RecallRequest,
    Request,
    RunState,
    RunStatus,
    StoreArtifact,
)


@dataclass(frozen=True)
class Environment:
    """What the reducer may consult besides the events: profiles and tool schemas."""

    profiles: Mapping[str, AgentProfile]
    tools: Mapping[str, ToolSpec] = field(default_factory=dict)
    trust_log: bool = False
    """Fold events without checking what they answer (a re-run folds a recorded run's events
    under new ids, which memory checked when it folded them)."""
    keyring: Keyring | None = None
    """The keys goals and commands must be signed with, each with the tenants its holder may
    act for; None takes them unsigned (a development cluster without authentication)."""


@dataclass(frozen=True)
class Step:
    """The outcome of folding one event."""

    state: RunState | None
    emissions: tuple[Emission, ...] = ()
    note: str = ""
    """Why the event changed nothing, when it did not (for logs)."""
    requests: tuple[Request, ...] = ()
    """Work for the handler: searches and writes of long-term memory."""
    orphan: bool = False
    """The event answers nothing the run asked (`note` says why): the handler refuses it,
    and it is dead-lettered as an orphan rather than folded."""
    forbidden: bool = False
    """A command its sender may not send (`note` says why): the handler refuses it, and it is
    dead-lettered as forbidden rather than folded."""
    refusal: Emission | None = None
    """A goal its sender may not submit: this answer goes to the sender, and the run (if the
    id is taken) is left as it was."""

    @property
    def changed(self) -> bool:
        return not self.note


def apply(state: RunState | None, event: Envelope[Any], env: Environment) -> Step:
    """Fold `event` into `state`; a run that ends leaves an episode in long-term memory."""
    step = _journal(_apply(state, event, env), event)
    after = step.state
    if after is not None and step.changed:
        owed = delegation.ended(state, after)  # a sub-task's result, its children's cancels
        step = replace(step, emissions=(*step.emissions, *owed)) if owed else step
    if (
        after is not None
        and after.finished
        and after.goal  # a run failed before its goal was ever read leaves nothing to learn
        and (state is None or not state.finished)
        and after.failure is not FailureReason.INVALID_GOAL
    ):
        return replace(step, requests=(*step.requests, served.episode(after)))
    return step


def _journal(step: Step, event: Envelope[Any]) -> Step:
    """Note `event` among the inputs folded since memory's last context or result; a step
    that emits one hands it the list (see `MemoryOutput`) and starts a new one."""
    if not step.changed or step.state is None:
        return step
    for index, emission in enumerate(step.emissions):
        if isinstance(emission.payload, ContextAssembled):  # what its answer must name
            context_id = derived_id(event.event_id, PRODUCER, index)
            step = replace(step, state=step.state.model_copy(update={"context_id": context_id}))
    assert step.state is not None
    folded = (*step.state.unannounced, event.event_id)
    if not any(isinstance(e.payload, MemoryOutput) for e in step.emissions):
        return replace(step, state=step.state.model_copy(update={"unannounced": folded}))
    emissions = tuple(
        e.model_copy(update={"payload": e.payload.model_copy(update={"folded": folded})})
        if isinstance(e.payload, MemoryOutput)
        else e
        for e in step.emissions
    )
    state = step.state.model_copy(update={"unannounced": ()})
    return replace(step, state=state, emissions=emissions)


def _apply(state: RunState | None, event: Envelope[Any], env: Environment) -> Step:
    if state is not None and str(event.event_id) in state.applied:
        return Step(state, note="duplicate event")
    payload = event.payload
    if isinstance(payload, COMMANDS):
        refused = _admit(state, event, env)
        if refused is not None:
            return refused
    if isinstance(payload, GoalSubmitted | RunForked):
        if state is not None:
            return _rejected(state, event)
        if isinstance(payload, RunForked):
            return _fork(event, payload, env)
        return _start(event, payload, env)
    if state is None:
        if isinstance(payload, FailRun):
            return _failed_unread(event, payload)
        return Step(None, note=f"{event.type} for an unknown run")
    if isinstance(payload, ForkRecorded):  # lineage: kept even after the run ended
        forks = tuple(sorted({*state.forks, payload.child_run_id}))
        return Step(_touch(state, event, forks=forks))
    if state.finished:
        return Step(state, note=f"{event.type} after the run ended")
    if isinstance(payload, FailRun):  # before the deadline: the command says why it ends
        return _fail_on_request(state, event, payload)
    if state.deadline_at is not None and event.occurred_at > state.deadline_at:
        return _fail(state, event, FailureReason.DEADLINE, "the run passed its deadline")
    if isinstance(payload, CancelRun):
        return _cancel(state, event, payload)
    if isinstance(payload, RunSteered):
        told = Message(role="user", content=payload.message)
        return Step(_touch(state, event, inbox=(*state.inbox, told)))
    if isinstance(payload, ApprovalRequested):
        return _held(state, event, payload, env)
    if isinstance(payload, ApprovalDecided):
        return _approval_decided(state, event, payload, env)
    if isinstance(payload, GuardTripped):
        return _guard_tripped(state, event, payload, env)
    if isinstance(payload, ToolCallApproved):
        return Step(state, note="memory's own approval, for the tool-executor")
    if isinstance(payload, ModelDecided | ModelFailed):
        orphan = _answers_another_context(state, event, env)
        if orphan is not None:
            return orphan
    if isinstance(payload, ModelDecided):
        if state.phase is Phase.SUMMARY and event.seq == state.step:
            return _summarised(state, event, payload, env)
        return _decided(state, event, payload, env)
    if isinstance(payload, ModelFailed):
        if event.seq != state.step or state.phase not in (Phase.DECISION, Phase.SUMMARY):
            return Step(state, note="stale model failure")
        return _fail(state, event, FailureReason.MODEL_ERROR, payload.error)
    if isinstance(payload, ToolCallSucceeded | ToolCallFailed):
        return _observed(state, event, payload, env)
    return Step(state, note=f"memory does not fold {event.type}")


COMMANDS = GoalSubmitted | RunForked | CancelRun | FailRun | ApprovalDecided | RunSteered
"""What a client may send (signed): goals, and commands to runs."""


def _admit(state: RunState | None, event: Envelope[Any], env: Environment) -> Step | None:
    """Refuse a goal or command whose sender may not send it (None: it may).

    With a keyring, each is signed by a key that may act for its tenant (docs/decisions/0025);
    a command about a run of another tenant needs a key that acts for every tenant (a
    service's), as does failing a run. Who sent a command is its signature's key id, whatever
    its `requested_by` says.
    """
    if env.keyring is None or env.trust_log:
        return None
    verdict = env.keyring.verify(event)
    payload = event.payload
    if isinstance(payload, GoalSubmitted) and payload.parent is not None:
        if isinstance(verdict, Refused) or not verdict.acts_for_any:
            why = verdict.reason if isinstance(verdict, Refused) else "only memory starts one"
            return _goal_refused(state, f"sub-task refused: {why}")
        return None
    if isinstance(payload, GoalSubmitted | RunForked):
        if isinstance(verdict, Refused):
            return _goal_refused(state, f"goal refused: {verdict.reason}")
        return None
    if isinstance(verdict, Refused):
        why = verdict.reason
    elif isinstance(payload, FailRun) and not verdict.acts_for_any:
        why = f"{verdict.key_id!r} may not fail runs (only the services do)"
    elif state is not None and state.tenant != event.tenant and not verdict.acts_for_any:
        why = f"the run is not of tenant {event.tenant!r}"
    elif isinstance(payload, ApprovalDecided) and state is not None:
        request = approvals.held(state, payload.call_id)
        if request is None:
            return None  # nothing to decide: said so when folded
        refused = approvals.may_decide(request, verdict.key_id, verdict.acts_for_any)
        if refused is None:
            return None
        why = refused
    else:
        return None
    return Step(state, note=f"{event.type} refused: {why}", forbidden=True)


def _goal_refused(state: RunState | None, message: str) -> Step:
    """A goal its sender may not submit: answered to the sender, the run left as it was."""
    rejection = GoalRejected(reason=RejectionReason.NOT_AUTHORIZED, message=message)
    return Step(state, note=message, refusal=Emission(topic=RESULTS.name, payload=rejection))


APPLIED_KEPT = 64
"""Ids of the latest events a state remembers: enough to recognise any redelivered one (an
older event is stale by its step, whatever its id)."""


PRODUCER = "memory"
"""Who memory's events name as their producer (the handler's `_follow` derives their ids so)."""
PLANNER = "planner"


def _answers_another_context(
    state: RunState, event: Envelope[Any], env: Environment
) -> Step | None:
    """A decision of this run's current step answers the context memory issued for it, and
    nothing else does: one that names another cause is an orphan (forged, or misrouted)."""
    if env.trust_log or event.seq != state.step or state.context_id is None:
        return None  # a stale step is ignored as such
    if event.causation_id == state.context_id:
        return None
    return Step(
        state,
        note=f"{event.type} for step {event.seq} answers {event.causation_id}, not the "
        f"context memory issued ({state.context_id})",
        orphan=True,
    )


def _orphan_result(
    state: RunState,
    event: Envelope[Any],
    outcome: ToolCallSucceeded | ToolCallFailed | ApprovalRequested | GuardTripped,
) -> Step | None:
    """A tool's answer names the step's decision as its cause, for one of its calls; once a
    person approved a held call, that call's approval. A held call has no result yet, and a
    denied one none but memory's record of the denial."""
    if event.seq != state.step or state.context_id is None:
        return None  # a stale step's result: ignored as such
    call = outcome.call_id
    cause, of = derived_id(state.context_id, PLANNER, 0), "the step's decision"
    request = isinstance(outcome, ApprovalRequested)  # the executor's, answering the decision
    answered = None if request or call is None else approvals.decided(state, call)
    if answered is not None and answered.approved and answered.approval_id is not None:
        cause, of = answered.approval_id, "the call's approval"
    if answered is not None and not answered.approved:
        if event.producer == PRODUCER:
            return None  # memory's own record of the denial, folded with it
        why = "the call was denied, and never ran"
    elif not request and call is not None and approvals.held(state, call) is not None:
        why = "the call waits for approval: it has not run"
    elif event.causation_id != cause:
        why = f"answers {event.causation_id}, not {of} ({cause})"
    elif state.phase is Phase.OBSERVATIONS and call not in state.calls:
        why = "names a call the decision did not make"
    else:
        return None
    return Step(state, note=f"result of {call}: {why}", orphan=True)


def _touch(state: RunState, event: Envelope[Any], **changes: Any) -> RunState:
    applied = (*state.applied[-(APPLIED_KEPT - 1) :], str(event.event_id))
    updated = max(state.updated_at, event.occurred_at)
    return state.model_copy(update={"applied": applied, "updated_at": updated, **changes})


def _append(state: RunState, *messages: Message) -> tuple[RunState, tuple[Request, ...]]:
    """The state with `messages` added to the history; a text too large to travel inline
    becomes an artifact, stored by the handler (the request returned) before it is sent."""
    stored: list[Request] = []
    added: list[Message] = []
    for message in messages:
        if message.artifact is None and len(message.content) > INLINE_CHARS:
            stored.append(StoreArtifact(text=message.content))
            message = message.model_copy(
                update={"content": "", "artifact": reference(message.content)}
            )
        added.append(message)
    counts = tuple(window.message_tokens(m) for m in added)
    return state.model_copy(
        update={
            "messages": (*state.messages, *added),
            "tokens": (*state.tokens, *counts),
            "history_tokens": state.history_tokens + sum(counts),
        }
    ), tuple(stored)


def _rejected(state: RunState, event: Envelope[Any]) -> Step:
    """A second goal for a run id already taken: answered with a rejection its submitter
    reads (the run itself goes on untouched); the run's own goal seen again is a duplicate."""
    if str(event.event_id) == state.goal_event_id:
        return Step(state, note="duplicate event")
    rejection = GoalRejected(
        reason=RejectionReason.DUPLICATE_RUN_ID,
        message=f"the run id {state.run_id!r} is taken: submit the goal with another one",
    )
    return Step(_touch(state, event), (Emission(topic=RESULTS.name, payload=rejection),))


def _unknown_agent(state: RunState, env: Environment) -> Step:
    known = ", ".join(sorted(env.profiles)) or "none"
    message = f"unknown agent profile {state.agent!r} (known: {known})"
    return _fail(state, None, FailureReason.INVALID_GOAL, message)


def _fork(event: Envelope[Any], fork: RunForked, env: Environment) -> Step:
    """A run that starts with another's first steps, copied: it goes on live from the next."""
    profile = env.profiles.get(fork.agent)
    goal = GoalSubmitted(goal=fork.goal, agent=fork.agent, budget=fork.budget)
    state = _new_state(event, goal, profile)
    if profile is None:
        return _unknown_agent(state, env)
    prompt = Message(role="system", content=fork.system_prompt or profile.system_prompt)
    copied = (
        fork.messages[1:] if fork.messages and fork.messages[0].role == "system" else fork.messages
    )
    state, stored = _append(state, prompt, *copied)
    state = state.model_copy(
        update={
            "head": _head_length(state.messages),
            "step": fork.from_step,
            "usage": fork.usage,
            "model": fork.model or state.model,
            "parent_run_id": fork.parent_run_id,
            "forked_at_step": fork.from_step,
        }
    )
    step = _next_context(state, env)
    return replace(step, requests=(*stored, *step.requests))


def _start(event: Envelope[Any], goal: GoalSubmitted, env: Environment) -> Step:
    profile = env.profiles.get(goal.agent)
    state = _new_state(event, goal, profile)
    if profile is None:
        return _unknown_agent(state, env)
    if profile.recall_limit > 0:
        # Memories come back as an event, so the first context is a function of the log;
        # they go before the goal, which joins the history with them.
        ask = RecallRequest(
            call_id=served.START_RECALL_CALL, query=goal.goal, limit=profile.recall_limit
        )
        return Step(state.model_copy(update={"phase": Phase.RECALL}), requests=(ask,))
    return _begin(state, env)


def _begin(state: RunState, env: Environment, *notes: Message) -> Step:
    """The history's head (system prompt, recalled memories, the goal); the first context."""
    profile = env.profiles[state.agent]
    goal = Message(role="user", content=state.goal)
    system = Message(role="system", content=profile.system_prompt)
    state, stored = _append(state, system, *notes, goal)
    step = _next_context(state.model_copy(update={"head": len(state.messages)}), env)
    return replace(step, requests=(*stored, *step.requests))


def _head_length(messages: tuple[Message, ...]) -> int:
    """Messages up to and including the goal (the first user message)."""
    for i, m in enumerate(messages):
        if m.role == "user":
            return i + 1
    return len(messages)


def _new_state(event: Envelope[Any], goal: GoalSubmitted, profile: AgentProfile | None) -> RunState:
    p = profile
    limits = budgets.limits(goal.budget, p)
    deadline_s = limits.deadline_s
    return RunState(
        run_id=event.run_id,
        tenant=event.tenant,
        agent=goal.agent,
        goal=goal.goal,
        model=p.model if p else "",
        tools=p.tools if p else (),
        max_steps=limits.max_steps,
        deadline_at=event.occurred_at + timedelta(seconds=deadline_s) if deadline_s else None,
        max_tokens=limits.max_tokens,
        max_cost_usd=limits.max_cost_usd,
        capped=limits.capped,
        price=(p.price or p.model) if p else "",
        context_budget=p.context_budget_tokens if p else 32_000,
        compaction=p.compaction if p else "truncate",
        no_progress_repeats=p.no_progress_repeats if p else 3,
        on_no_progress=p.on_no_progress if p else "nudge",
        started_at=event.occurred_at,
        updated_at=event.occurred_at,
        applied=(str(event.event_id),),
        goal_event_id=str(event.event_id),
        delegated_by=goal.parent,
    )


def _recalled(
    state: RunState, event: Envelope[Any], outcome: ToolCallSucceeded, env: Environment
) -> Step:
    """The memories recalled for the run's start: put them before the goal, then begin."""
    state = _touch(state, event)
    if outcome.output == served.NO_MEMORIES:
        return _begin(state, env)
    return _begin(state, env, Message(role="system", content=served.memories_note(outcome.output)))


def _next_context(state: RunState, env: Environment) -> Step:
    """Assemble the next step's context, unless the run is out of steps or budget."""
    if state.step >= state.max_steps:
        return _fail(
            state,
            None,
            FailureReason.MAX_STEPS,
            f"the run used its {state.max_steps} steps without a final answer",
        )
    spent = budgets.exhausted(state)
    if spent is not None:
        return _fail(state, None, FailureReason.BUDGET_EXHAUSTED, spent)
    stored: tuple[Request, ...] = ()
    if state.inbox:  # what people said since the last context, after the step's results
        state, stored = _append(state.model_copy(update={"inbox": ()}), *state.inbox)
    why = None if state.wrapping_up else budgets.last_step(state)
    if why is not None:
        note = Message(role="user", content=budgets.wrap_up_note(why))
        state, more = _append(state.model_copy(update={"wrapping_up": True}), note)
        stored += more
    tools = tuple(_shown(name, state, env) for name in expand(state.tools, env.tools))
    if state.step == 0 or state.fixed_tokens == 0:
        state = state.model_copy(update={"fixed_tokens": window.tools_tokens(tools)})
    planned = window.plan(
        _history(state), state.context_budget, state.fixed_tokens, state.summary, state.summarized
    )
    first, end = planned.left_out
    if state.compaction == "summarize" and end > max(first, state.summarized):
        step = _ask_summary(state, (max(first, state.summarized), end))
        return replace(step, requests=(*stored, *step.requests))
    state = state.model_copy(update={"step": state.step + 1, "phase": Phase.DECISION})
    context = ContextAssembled(
        agent=state.agent,
        model=state.model,
        base=state.sent,
        appended=state.messages[state.sent :],
        window=planned.window,
        tools=tools,
    )
    state = state.model_copy(update={"sent": len(state.messages)})
    return Step(state, (Emission(topic=CONTEXTS.name, payload=context),), requests=stored)


def _shown(tool: str, state: RunState, env: Environment) -> ToolSpec:
    """A tool as the run's model sees it (`delegate` with the agents this one may ask)."""
    profile = env.profiles.get(state.agent)
    if tool == delegation.DELEGATE and profile is not None:
        return delegation.spec_for(profile, env.profiles)
    return env.tools[tool]


def _history(state: RunState) -> window.History:
    return window.History(state.messages, state.tokens, state.history_tokens, state.head)


def _ask_summary(state: RunState, left_out: tuple[int, int]) -> Step:
    """Ask the run's model to summarise the messages the window now leaves out (with the
    summary so far): a model call of its own, whose answer becomes the window's note."""
    shown = window.to_summarise(_history(state), left_out, state.context_budget, state.summary)
    context = ContextAssembled(
        agent=state.agent,
        model=state.model,
        base=state.sent,
        appended=state.messages[state.sent :],
        window=shown,
        purpose="summary",
        instruction=window.SUMMARY_INSTRUCTION,
    )
    state = state.model_copy(
        update={
            "step": state.step + 1,
            "phase": Phase.SUMMARY,
            "summarizing": left_out,
            "sent": len(state.messages),
        }
    )
    return Step(state, (Emission(topic=CONTEXTS.name, payload=context),))


def _summarised(
    state: RunState, event: Envelope[Any], decision: ModelDecided, env: Environment
) -> Step:
    """The model's summary of the messages left out: the note of every window from now on."""
    _, end = state.summarizing
    text = decision.final_answer
    if text is None:  # it called tools instead: the marker then, as without summaries
        note = window.left_out_note(end - state.head, sum(state.tokens[state.head : end]))
    else:
        note = window.summary_note(end - state.head, text)
    state = _touch(
        state,
        event,
        usage=state.usage + decision.usage,
        last_usage=decision.usage,
        summary=note,
        summarized=end,
        summarizing=(0, 0),
        phase=Phase.DECISION,
    )
    return _next_context(state, env)


def _decided(
    state: RunState, event: Envelope[Any], decision: ModelDecided, env: Environment
) -> Step:
    if event.seq != state.step or state.phase is not Phase.DECISION:
        return Step(state, note=f"stale decision for step {event.seq}")
    usage = state.usage + decision.usage
    spent = {"usage": usage, "last_usage": decision.usage}
    if decision.final_answer is not None:
        answer = Message(role="assistant", content=decision.final_answer)
        done, stored = _append(state, answer)
        done = _touch(
            done,
            event,
            status=RunStatus.COMPLETED,
            phase=Phase.DONE,
            answer=decision.final_answer,
            **spent,
        )
        result = RunCompleted(
            answer=decision.final_answer,
            steps=state.step,
            usage=budgets.usage_of(done),
            cost_usd=budgets.cost_of(done),
        )
        return Step(done, (Emission(topic=RESULTS.name, payload=result),), requests=stored)
    asked = Message(role="assistant", tool_calls=decision.tool_calls)
    calls = tuple(c.call_id for c in decision.tool_calls)
    waiting, _ = _append(state, asked)  # tool calls travel inline (the decision holds them)
    waiting = _touch(
        waiting,
        event,
        phase=Phase.OBSERVATIONS,
        calls=calls,
        received=tuple(m for m in state.received if m.tool_call_id in calls),
        held=tuple(h for h in state.held if h.call_id in calls),
        **spent,
    )
    answers, requests = served.serve(waiting, decision.tool_calls)
    waiting, started = delegation.start(
        waiting, decision.tool_calls, env.profiles, event.occurred_at
    )
    step = _maybe_next(waiting, env)
    emissions = (*answers, *started, *step.emissions)
    return replace(step, emissions=emissions, requests=tuple(requests))


def _observed(
    state: RunState,
    event: Envelope[Any],
    outcome: ToolCallSucceeded | ToolCallFailed,
    env: Environment,
) -> Step:
    if state.phase is Phase.RECALL:
        if isinstance(outcome, ToolCallSucceeded) and outcome.call_id == served.START_RECALL_CALL:
            return _recalled(state, event, outcome, env)
        return Step(state, note=f"result of a call not pending ({outcome.call_id})")
    if outcome.tool == delegation.DELEGATE and delegation.child_of(state, outcome.call_id):
        # A sub-task's end: memory answers the call from the child run, not from the decision.
        if event.producer != PRODUCER and not env.trust_log:
            why = f"a sub-task's result comes from memory, not {event.producer!r}"
            return Step(state, note=f"result of {outcome.call_id}: {why}", orphan=True)
        if event.seq == state.step and outcome.call_id in state.pending_calls:
            state = delegation.returned(state, outcome)
    elif not env.trust_log:
        orphan = _orphan_result(state, event, outcome)
        if orphan is not None:
            return orphan
    known = {m.tool_call_id for m in state.received}
    awaiting = state.phase is Phase.DECISION or outcome.call_id in state.pending_calls
    if event.seq != state.step or outcome.call_id in known or not awaiting:
        return Step(state, note=f"result of a call not pending ({outcome.call_id})")
    return _maybe_next(_received(_touch(state, event), outcome), env)


def _received(state: RunState, outcome: ToolCallSucceeded | ToolCallFailed) -> RunState:
    """The state with `outcome` among the step's results, as the model will read it."""
    if isinstance(outcome, ToolCallSucceeded):
        observed = Message(
            role="tool",
            content=outcome.output,
            artifact=outcome.artifact,
            tool_call_id=outcome.call_id,
        )
    else:
        content = f"error ({outcome.error.kind.value}): {outcome.error.message}"
        observed = Message(role="tool", content=content, tool_call_id=outcome.call_id)
    received = tuple(sorted((*state.received, observed), key=lambda m: m.tool_call_id or ""))
    return state.model_copy(update={"received": received})


def _maybe_next(state: RunState, env: Environment) -> Step:
    """Once every call of the decision has its result, move on to the next step."""
    if state.phase is not Phase.OBSERVATIONS or state.pending_calls:
        return Step(state)
    by_call = {m.tool_call_id: m for m in state.received}
    results = tuple(by_call[c] for c in state.calls)  # in the order the model asked
    asked = state.messages[-1].tool_calls
    kept = progress.ROUNDS_KEPT * state.no_progress_repeats
    rounds = (*state.rounds, progress.fingerprint(asked, results))[-kept:]
    done, stored = _append(state, *results)
    done = done.model_copy(update={"calls": (), "received": (), "rounds": rounds})
    why = progress.stuck(rounds, state.no_progress_repeats)
    if why is None:
        step = _next_context(done, env)
    elif state.on_no_progress == "fail" or state.nudged:
        step = _fail(done, None, FailureReason.NO_PROGRESS, f"no progress: {why}")
    else:
        note = Message(role="user", content=progress.nudge_note(why))
        nudged, more = _append(done.model_copy(update={"nudged": True}), note)
        stored += more
        step = _next_context(nudged, env)
    return replace(step, requests=(*stored, *step.requests))


def _fail(
    state: RunState, event: Envelope[Any] | None, reason: FailureReason, message: str
) -> Step:
    if event is not None:
        state = _touch(state, event)
    failed = state.model_copy(
        update={
            "status": RunStatus.FAILED,
            "phase": Phase.DONE,
            "held": (),
            "failure": reason,
            "failure_message": message,
        }
    )
    result = RunFailed(
        reason=reason,
        message=message,
        steps=state.step,
        usage=budgets.usage_of(state),
        cost_usd=budgets.cost_of(state),
    )
    return Step(failed, (Emission(topic=RESULTS.name, payload=result),))


def _fail_on_request(state: RunState, event: Envelope[Any], command: FailRun) -> Step:
    """End the run as failed on recovery's word, unless it moved on since the word was said."""
    if command.at_step is not None and command.at_step != state.step:
        return Step(state, note=f"stale FailRun for step {command.at_step}")
    return _fail(state, event, command.reason, command.message)


def _failed_unread(event: Envelope[Any], command: FailRun) -> Step:
    """A run whose goal memory never read (it was parked as invalid or poison): recorded as
    failed all the same, so the run has one end, in memory's state and in the log alike."""
    state = RunState(
        run_id=event.run_id,
        tenant=event.tenant,
        agent="",
        goal="",
        model="",
        tools=(),
        max_steps=0,
        deadline_at=None,
        started_at=event.occurred_at,
        updated_at=event.occurred_at,
        applied=(str(event.event_id),),
    )
    return _fail(state, None, command.reason, command.message)


def _cancel(state: RunState, event: Envelope[Any], command: CancelRun) -> Step:
    cancelled = _touch(state, event, status=RunStatus.CANCELLED, phase=Phase.DONE, held=())
    result = RunCancelled(reason=command.reason, steps=state.step)
    return Step(cancelled, (Emission(topic=RESULTS.name, payload=result),))


def _held(
    state: RunState, event: Envelope[Any], request: ApprovalRequested, env: Environment
) -> Step:
    """The executor holds a call of the step for a person's approval: the step waits."""
    if not env.trust_log:
        orphan = _orphan_result(state, event, request)
        if orphan is not None:
            return orphan
    held = approvals.hold(state, event, request)
    if isinstance(held, str):
        return Step(state, note=held)
    return Step(_touch(held, event))


def _approval_decided(
    state: RunState, event: Envelope[Any], answer: ApprovalDecided, env: Environment
) -> Step:
    """A person's answer to a held call: taken once; an answer that finds nothing to decide
    is refused with its reason."""
    if approvals.held(state, answer.call_id) is None:
        return Step(state, note=approvals.not_held(state, answer.call_id), orphan=True)
    decided, emissions, denial = approvals.decide(state, event, answer, state.agent)
    decided = _touch(decided, event)
    if denial is None:
        return Step(decided, emissions)
    step = _maybe_next(_received(decided, denial), env)  # the model reads the denial now
    return replace(step, emissions=(*emissions, *step.emissions))


MODEL_HOOKS = (GuardHook.BEFORE_MODEL, GuardHook.AFTER_MODEL)


def _guard_tripped(
    state: RunState, event: Envelope[Any], trip: GuardTripped, env: Environment
) -> Step:
    """A guard stopped the step's model call or one of its tool calls: `fail` ends the run;
    a model hook's `tell` sets the decision aside and tells the model at the next step (a tool
    hook's `tell` is the call's own result, which follows)."""
    if trip.hook in MODEL_HOOKS:
        orphan = _answers_another_context(state, event, env)
        if orphan is not None:
            return orphan
        if event.seq != state.step or state.phase is not Phase.DECISION:
            return Step(state, note=f"stale guard trip for step {event.seq}")
    elif event.seq != state.step or state.phase is Phase.DONE:
        return Step(state, note=f"stale guard trip for step {event.seq}")
    elif not env.trust_log and trip.call_id is not None:
        orphan = _orphan_result(state, event, trip)
        if orphan is not None:
            return orphan
    said = f"guard {trip.guard!r} ({trip.hook.value}): {trip.reason}"
    if trip.hook is GuardHook.AFTER_MODEL:  # the model was called: its tokens are spent
        state = state.model_copy(
            update={"usage": state.usage + trip.usage, "last_usage": trip.usage}
        )
    if trip.action == "fail":
        return _fail(state, event, FailureReason.GUARD, said)
    if trip.hook not in MODEL_HOOKS:
        return Step(_touch(state, event))  # the call's result says it to the model
    note = Message(role="user", content=f"Your last step was set aside by {said}")
    told, stored = _append(_touch(state, event), note)
    step = _next_context(told, env)
    return replace(step, requests=(*stored, *step.requests))
