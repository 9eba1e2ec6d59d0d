"""Child process for test_interfaces: serve ResetEpisode and GetEpisodeResult over real DDS.

Usage: python episode_service_server.py NAMESPACE [TIMEOUT_S]

Serves NAMESPACE/reset_episode and NAMESPACE/get_episode_result until stdin is closed, then
shuts rclpy down and exits 0 (3 on timeout). A reset with seed >= 0 starts episode n+1 whose
result is helpers.robot_brain_msgs_samples.episode_result_for(n+1, seed); a negative seed is
refused with success=False, so the error path crosses the wire too.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from robot_brain_msgs.msg import EpisodeResult
from robot_brain_msgs.srv import GetEpisodeResult, ResetEpisode
from robot_brain_msgs_samples import NEGATIVE_SEED_MESSAGE, episode_result_for, run_until_stdin_closes


class EpisodeServer:
    """The smallest stateful server: an episode counter and the current result."""

    def __init__(self) -> None:
        self.episode = 0
        self.result = EpisodeResult(message="no episode yet")

    def reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response) -> ResetEpisode.Response:
        """Start a new episode from the request's seed, or refuse a negative seed."""
        if request.seed < 0:
            response.success = False
            response.message = NEGATIVE_SEED_MESSAGE
            response.result = self.result
            return response
        self.episode += 1
        self.result = episode_result_for(self.episode, request.seed)
        response.success = True
        response.message = f"reset to seed {request.seed}"
        response.result = self.result
        return response

    def get_result(
        self, _request: GetEpisodeResult.Request, response: GetEpisodeResult.Response
    ) -> GetEpisodeResult.Response:
        """Report the current episode's result."""
        response.result = self.result
        return response


def main(argv: list[str]) -> int:
    """Serve until the parent closes stdin; returns the exit status."""
    namespace = argv[1].rstrip("/")
    timeout_s = float(argv[2]) if len(argv) > 2 else 60.0
    server = EpisodeServer()
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("episode_service_server", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        node.create_service(ResetEpisode, f"{namespace}/reset_episode", server.reset)
        node.create_service(GetEpisodeResult, f"{namespace}/get_episode_result", server.get_result)
        print("ready", flush=True)
        stopped = run_until_stdin_closes(lambda t: executor.spin_once(timeout_sec=t), timeout_s)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    return 0 if stopped else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
