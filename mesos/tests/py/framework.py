"""A small Mesos framework written with pymesos (a third-party Mesos client library),
run by the agora-mesos end-to-end tests against a real Agora master and agents.

It subscribes, launches TASKS command tasks from the offers it gets (or, with
--executor, TASKS tasks on one custom executor written with pymesos: executor.py),
waits until every task was seen TASK_RUNNING and TASK_FINISHED (pymesos acknowledges
each update), reconciles them explicitly and expects an answer per task, then tears the
framework down. It prints one JSON line with what it saw and exits 0 on success, 1 on a
timeout or an unexpected state.

Usage: framework.py MASTER_HOST:PORT [--tasks N] [--executor PATH_TO_executor.py]
"""

import argparse
import json
import logging
import os
import sys
import threading
import time

from pymesos import MesosSchedulerDriver, Scheduler, encode_data

TIMEOUT_SECONDS = 90


class Framework(Scheduler):
    def __init__(self, tasks, executor_cmd):
        self.wanted = tasks
        self.executor_cmd = executor_cmd
        self.launched = {}
        self.states = {}
        self.reconciled = set()
        self.reconciling = False
        self.framework_id = None
        self.offers_seen = 0
        self.messages = []
        self.error = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    def registered(self, driver, framework_id, master_info):
        self.framework_id = framework_id["value"]

    def _task(self, offer, n):
        task_id = "py-task-%d" % n
        task = {
            "name": task_id,
            "task_id": {"value": task_id},
            "agent_id": offer["agent_id"],
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
            ],
        }
        if self.executor_cmd:
            task["data"] = encode_data(("hello from task %d" % n).encode())
            task["executor"] = {
                "type": "CUSTOM",
                "executor_id": {"value": "py-executor"},
                "name": "pymesos executor",
                "command": {"value": self.executor_cmd},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
                ],
            }
        else:
            task["command"] = {"value": "echo hello from %s; sleep 0.3" % task_id}
        return task_id, task

    def resourceOffers(self, driver, offers):
        with self.lock:
            for offer in offers:
                self.offers_seen += 1
                tasks = []
                # One offer carries all tasks of the custom executor (one executor per agent).
                while len(self.launched) < self.wanted:
                    task_id, task = self._task(offer, len(self.launched))
                    self.launched[task_id] = offer["agent_id"]["value"]
                    tasks.append(task)
                    if not self.executor_cmd:
                        break
                if tasks:
                    driver.launchTasks(offer["id"], tasks)
                else:
                    driver.declineOffer(offer["id"], {"refuse_seconds": 60})

    def statusUpdate(self, driver, status):
        task_id = status["task_id"]["value"]
        state = status["state"]
        with self.lock:
            if status.get("reason") == "REASON_RECONCILIATION":
                self.reconciled.add(task_id)
                if self.reconciled >= set(self.launched):
                    self.done.set()
                return
            self.states.setdefault(task_id, []).append(state)
            if state in ("TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_KILLED"):
                self.error = "task %s ended %s: %s" % (task_id, state, status.get("message"))
                self.done.set()
                return
            finished = [t for t, s in self.states.items() if "TASK_FINISHED" in s]
            if len(finished) == self.wanted and not self.reconciling:
                self.reconciling = True
                driver.reconcileTasks(
                    [{"task_id": {"value": t}, "agent_id": {"value": a}}
                     for t, a in self.launched.items()]
                )

    def frameworkMessage(self, driver, executor_id, agent_id, message):
        self.messages.append(message)

    def error(self, driver, message):
        self.error = "ERROR event: %s" % message
        self.done.set()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("master")
    p.add_argument("--tasks", type=int, default=2)
    p.add_argument("--executor")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    executor_cmd = None
    if a.executor:
        executor_cmd = "%s %s" % (sys.executable, os.path.abspath(a.executor))
    sched = Framework(a.tasks, executor_cmd)
    # The executor runs the venv's python, which may live under root's home: as root
    # (the test's agents allow root tasks).
    user = "root" if a.executor else ""
    framework = {"user": user, "name": "pymesos-e2e", "hostname": "localhost"}
    driver = MesosSchedulerDriver(sched, framework, a.master, use_addict=False)
    driver.start()
    ok = sched.done.wait(TIMEOUT_SECONDS)
    # Teardown: pymesos sends TEARDOWN when stopped without failover.
    driver.stop()
    driver.join()
    report = {
        "framework_id": sched.framework_id,
        "offers_seen": sched.offers_seen,
        "states": sched.states,
        "reconciled": sorted(sched.reconciled),
        "messages": [m for m in sched.messages],
        "error": sched.error if isinstance(sched.error, str) else None,
        "timed_out": not ok,
    }
    print(json.dumps(report), flush=True)
    sys.exit(0 if ok and report["error"] is None else 1)


if __name__ == "__main__":
    main()
