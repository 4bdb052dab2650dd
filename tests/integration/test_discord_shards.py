"""Discord sharding: DIKKAT_DISCORD_SHARD_IDS of _SHARD_COUNT, commands synced by one process."""

from __future__ import annotations

import discord
import pytest

from dikkat.bot.discord import build_discord_client
from dikkat.config import Settings


def test_unsharded_client_is_one_shard_that_syncs_commands(bot) -> None:
    client = build_discord_client(bot.router, bot.settings)
    assert not isinstance(client, discord.AutoShardedClient) and client.syncs_commands


@pytest.mark.parametrize(("ids", "syncs"), [("0,1", True), ("2, 3", False)])
def test_sharded_client_runs_its_shards_and_only_shard_0_syncs(bot, ids: str, syncs: bool) -> None:
    settings = bot.settings.model_copy(update={"discord_shard_ids": ids, "discord_shard_count": 4})
    client = build_discord_client(bot.router, settings)
    assert isinstance(client, discord.AutoShardedClient)
    assert client.shard_ids == [int(i) for i in ids.split(",")] and client.shard_count == 4
    assert client.syncs_commands is syncs


@pytest.mark.parametrize(
    "options",
    [{"discord_shard_ids": "0,1"}, {"discord_shard_ids": "0,4", "discord_shard_count": 4},
     {"discord_shard_ids": "a", "discord_shard_count": 2}],
)  # fmt: skip
def test_inconsistent_shard_settings_are_refused(options: dict) -> None:
    with pytest.raises(ValueError, match="DIKKAT_DISCORD_SHARD_IDS"):
        Settings(**options)
