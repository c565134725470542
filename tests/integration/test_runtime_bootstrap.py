"""Bootstrap: the data folder, the master key, adapter choice, lazy mailer, closing."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from lunamail.adapters.mailer.memory import MemoryMailer
from lunamail.config import ConfigError, Settings
from lunamail.ports.mailer import Mailer, OutgoingMail, SendResult
from lunamail.ports.queue import QueueError
from lunamail.runtime.bootstrap import (
    LazyMailer,
    bootstrap,
    bootstrap_in,
    build_pacer,
    for_platform,
    load_master_key,
    open_queue,
    retry_policy,
)

from . import runtime_fixtures as fx


def test_creates_data_folder_and_private_master_key(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    with bootstrap_in(data) as system:
        key_file = system.settings.master_key_path
        assert key_file.stat().st_size == 32
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        first = system.secrets.key("acc", "unsubscribe")
        assert system.settings.queue_path.exists()
    with bootstrap_in(data) as again:
        assert again.secrets.key("acc", "unsubscribe") == first  # same key after restart


def test_concurrent_first_use_agrees_on_one_master_key(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    keys: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: keys.append(load_master_key(path))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]  # no temp files left


def test_short_master_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="shorter"):
        load_master_key(path)


def test_mailer_is_built_on_first_use_only() -> None:
    built: list[MemoryMailer] = []

    def factory() -> Mailer:
        built.append(MemoryMailer())
        return built[-1]

    lazy = LazyMailer(factory)
    lazy.close()  # closing an unbuilt mailer builds nothing
    assert built == []
    results: list[SendResult] = []
    lazy.send([OutgoingMail("b@x.test", "r@y.test", b"data", ref=1)], results.append)
    lazy.send([OutgoingMail("b@x.test", "s@y.test", b"data", ref=2)], results.append)
    assert len(built) == 1
    assert [r.ref for r in results] == [1, 2]
    assert [m.rcpt_to for m in built[0].sent] == ["r@y.test", "s@y.test"]
    lazy.close()
    assert built[0].closed


def test_system_uses_injected_parts_and_closes_them(tmp_path: Path) -> None:
    mailer = MemoryMailer()
    system = bootstrap_in(tmp_path, mailer=mailer, router=fx.ROUTER)
    assert system.deps.mailer is mailer
    assert system.router is fx.ROUTER
    assert system.deps.store is system.store
    system.close()
    assert mailer.closed
    with pytest.raises(QueueError):
        system.queue.send("q", b"x")


def test_default_mailer_is_lazy_so_a_bad_smtp_url_does_not_break_startup(tmp_path: Path) -> None:
    overrides = {"smtp_url": "not a url"}
    with bootstrap_in(tmp_path, settings_overrides=overrides) as system:
        assert isinstance(system.mailer, LazyMailer)
        assert not system.mailer.built


def test_memory_store_and_unknown_backends(tmp_path: Path) -> None:
    with bootstrap_in(tmp_path, settings_overrides={"store": "memory"}) as system:
        system.store.put({"pk": "A#x", "sk": "META", "v": 1})
        assert system.store.get("A#x", "META") == {"pk": "A#x", "sk": "META", "v": 1}
    for field, value in (("store", "oracle"), ("queue", "carrier-pigeon"), ("blobs", "floppy")):
        with pytest.raises(ConfigError, match=field):
            bootstrap_in(tmp_path / field, settings_overrides={field: value})


def test_router_and_retry_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_attempts=7, router=f"{fx.__name__}:ROUTER",
                        retry_base_delay=0.5, retry_max_delay=4.0)
    with bootstrap(settings) as system:
        assert system.router is fx.ROUTER
    policy = retry_policy(settings)
    assert (policy.max_attempts, policy.base_delay, policy.max_delay) == (7, 0.5, 4.0)


def test_open_queue_needs_no_key_material(tmp_path: Path) -> None:
    q = open_queue(Settings(data_dir=tmp_path))
    try:
        assert q.depth() == {}
    finally:
        q.close()
    assert not (tmp_path / "master.key").exists()


def test_aws_refuses_to_start_without_its_bucket_and_master_key_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        bootstrap(Settings(data_dir=tmp_path / "never", platform="aws"))
    assert str(err.value) == ("setting s3_bucket (LUNAMAIL_S3_BUCKET) and master_key_secret "
                              "(LUNAMAIL_MASTER_KEY_SECRET) is required on AWS")
    assert not (tmp_path / "never").exists()  # refused before anything was made
    with pytest.raises(ConfigError, match=r"^setting master_key_secret \(LUNAMAIL_MASTER_KEY_SECRET\)"):
        for_platform(Settings(platform="aws", s3_bucket="b"))
    chosen = for_platform(Settings(platform="aws", s3_bucket="b", master_key_secret="arn:secret"))
    assert (chosen.store, chosen.queue, chosen.blobs, chosen.mailer) == ("dynamodb", "sqs", "s3", "ses")
    with pytest.raises(ConfigError, match="setting platform"):
        for_platform(Settings(platform="lambda"))


def test_the_pacer_on_aws_is_the_shared_dynamodb_bucket(tmp_path: Path) -> None:
    from lunamail.adapters.pacer.dynamodb import DynamoPacer
    aws = for_platform(Settings(platform="aws", s3_bucket="b", master_key_secret="s", send_rate=10.0))
    assert isinstance(build_pacer(aws), DynamoPacer)  # never silently none on AWS
    assert build_pacer(Settings(data_dir=tmp_path)) is None  # no rate: no pacer, and it says so
