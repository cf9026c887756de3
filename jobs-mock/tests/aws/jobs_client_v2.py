"""Drives jobs-service's device API with AWS's own device client, IotJobsClientV2 (awsiotsdk).

Usage: python jobs_client_v2.py HOST PORT THING

Connects to the broker with MQTT 5 as THING, then works through the thing's pending jobs the
way a device would: start-next, update to SUCCEEDED (with expectedVersion), describe the ended
execution (which AWS rejects with TerminalStateReached), until start-next finds nothing. Ends
with GetPendingJobExecutions and prints one JSON object with what the service answered.
Every wait is bounded (10 s).
"""

import concurrent.futures
import json
import sys

import awsiot
from awscrt import mqtt5, mqtt_request_response
from awsiot import iotjobs

TIMEOUT = 10


def main():
    host, port, thing = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    connected = concurrent.futures.Future()
    client = mqtt5.Client(
        mqtt5.ClientOptions(
            host_name=host,
            port=port,
            connect_options=mqtt5.ConnectPacket(client_id=thing),
            on_lifecycle_event_connection_success_fn=lambda _: connected.set_result(True),
        )
    )
    client.start()
    connected.result(timeout=TIMEOUT)
    jobs = iotjobs.IotJobsClientV2(
        client,
        mqtt_request_response.ClientOptions(
            max_request_response_subscriptions=4,
            max_streaming_subscriptions=2,
            operation_timeout_in_seconds=TIMEOUT,
        ),
    )
    done = []
    for _ in range(10):
        started = jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing)
        ).result(timeout=TIMEOUT)
        execution = started.execution
        if execution is None:
            break
        updated = jobs.update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=thing,
                job_id=execution.job_id,
                status="SUCCEEDED",
                expected_version=execution.version_number,
                include_job_execution_state=True,
                status_details={"client": "IotJobsClientV2"},
            )
        ).result(timeout=TIMEOUT)
        try:
            jobs.describe_job_execution(
                iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id=execution.job_id)
            ).result(timeout=TIMEOUT)
            describe = "accepted"
        except awsiot.V2ServiceException as error:
            describe = error.modeled_error.code if error.modeled_error else str(error.inner_error)
        done.append(
            {
                "jobId": execution.job_id,
                "executionNumber": execution.execution_number,
                "startedVersion": execution.version_number,
                "startedStatus": execution.status,
                "document": execution.job_document,
                "updatedVersion": updated.execution_state.version_number,
                "updatedStatus": updated.execution_state.status,
                "describeAfterwards": describe,
            }
        )
    pending = jobs.get_pending_job_executions(
        iotjobs.GetPendingJobExecutionsRequest(thing_name=thing)
    ).result(timeout=TIMEOUT)
    print(
        json.dumps(
            {
                "done": done,
                "inProgress": len(pending.in_progress_jobs or []),
                "queued": len(pending.queued_jobs or []),
            }
        )
    )
    client.stop()


if __name__ == "__main__":
    main()
