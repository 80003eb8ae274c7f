"""A Mesos HTTP executor written with pymesos (a third-party Mesos client library), run
by the agora-mesos end-to-end tests. The agent starts it with Mesos's environment
(MESOS_AGENT_ENDPOINT, MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID, MESOS_SANDBOX, ...).

Each task it is given: TASK_RUNNING, then it writes the task's data into a file of the
sandbox, sends the data back to the scheduler as a framework message, and reports
TASK_FINISHED. It exits when the agent shuts it down.
"""

import logging
import os
import threading
import time

from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data


class E(Executor):
    def launchTask(self, driver, task):
        def run():
            status = {"task_id": task["task_id"], "state": "TASK_RUNNING"}
            driver.sendStatusUpdate(dict(status))
            data = decode_data(task.get("data", "")) if task.get("data") else b""
            sandbox = os.environ["MESOS_SANDBOX"]
            with open(os.path.join(sandbox, task["task_id"]["value"] + ".out"), "wb") as f:
                f.write(data)
            driver.sendFrameworkMessage(encode_data(data))
            time.sleep(0.2)
            driver.sendStatusUpdate(dict(status, state="TASK_FINISHED", message="done"))

        threading.Thread(target=run, daemon=True).start()

    def killTask(self, driver, task_id):
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED"})


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    MesosExecutorDriver(E(), use_addict=False).run()
