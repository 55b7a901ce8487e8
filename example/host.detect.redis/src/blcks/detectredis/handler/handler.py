"""detectredis: PING Redis on every host with a tag; report the hosts that do not answer."""

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from blcks import ServiceName, blcks

FAAS_METHOD_NAME = "detectredis"
DEFAULT_PORT = 6379
CONNECT_TIMEOUT = 5


@blcks
def main(event, context):
    """Entry called by the runtime; blcks dispatches to the script named by event['action']."""


def answers_ping(ip, port):
    """True when a Redis server at ip:port answers PING within the timeout (one try)."""
    client = redis.Redis(
        host=ip,
        port=port,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@blcks.script(FAAS_METHOD_NAME)
def process(tag_name):
    hosts_manager = blcks.createService(ServiceName.HostsManager)
    hosts = hosts_manager.getHosts(search=f"tag:{tag_name}")["data"]
    fail_hosts = [
        {"id": host["id"], "ip": host["ip"], "name": host["name"]}
        for host in hosts
        if not answers_ping(host["ip"], host.get("port") or DEFAULT_PORT)
    ]
    blcks.logger.info("redis checked", extra={"checked": len(hosts), "failed": len(fail_hosts)})
    return {"fail_hosts_count": len(fail_hosts), "fail_hosts": fail_hosts}
