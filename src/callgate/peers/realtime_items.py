"""Conversation item handlers of the local Realtime peer (GA ``conversation.item.*``).

A mixin of :class:`.realtime_protocol.PeerConnection`: truncate, create, delete, retrieve.
``conversation.item.create`` takes messages, ``function_call`` items and
``function_call_output`` items; an output must name the ``call_id`` of a function call in
the conversation (the API checks that too), else the client gets an ``error`` event.
"""

from __future__ import annotations

from typing import Any

from callgate.peers.realtime_records import ConnectionRecord, PeerItem
from callgate.peers.realtime_validation import new_id

__all__ = ["ItemHandlers", "function_call_item", "item_json", "message_item"]


def message_item(item: PeerItem, status: str = "completed", audio: bool = False) -> dict[str, Any]:
    """A GA ``realtime.item`` message for ``item``."""
    content: list[dict[str, Any]]
    if item.role == "assistant":
        part = {"type": "output_audio", "transcript": item.text} if audio else None
        content = [part] if part else [{"type": "output_text", "text": item.text}]
    elif audio:
        content = [{"type": "input_audio", "transcript": item.text or None}]
    else:
        content = [{"type": "input_text", "text": item.text}]
    return {
        "id": item.id,
        "object": "realtime.item",
        "type": "message",
        "role": item.role,
        "status": status,
        "content": content,
    }


def function_call_item(item: PeerItem, status: str = "completed") -> dict[str, Any]:
    """A GA ``realtime.item`` of type ``function_call`` for ``item``."""
    return {
        "id": item.id,
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "name": item.name,
        "call_id": item.call_id,
        "arguments": item.arguments,
    }


def item_json(item: PeerItem, status: str = "completed") -> dict[str, Any]:
    """Any conversation item as the API shows it (``conversation.item.retrieved``)."""
    if item.type == "function_call":
        return function_call_item(item, status)
    if item.type == "function_call_output":
        return {
            "id": item.id,
            "object": "realtime.item",
            "type": "function_call_output",
            "status": status,
            "call_id": item.call_id,
            "output": item.text,
        }
    return message_item(item, status)


class ItemHandlers:
    """``conversation.item.*`` handlers; the connection provides ``record``/``send``/``fail``."""

    record: ConnectionRecord

    async def send(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    async def fail(self, message: str, code: str, param: str | None, event_id: object) -> None:
        raise NotImplementedError

    def _find(self, item_id: str) -> PeerItem | None:
        return next((item for item in self.record.items if item.id == item_id), None)

    def _find_call(self, call_id: str) -> PeerItem | None:
        return next(
            (i for i in self.record.items if i.type == "function_call" and i.call_id == call_id),
            None,
        )

    async def on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        """``conversation.item.truncate`` -> ``conversation.item.truncated``, bounds checked."""
        item = self._find(event["item_id"])
        end_ms, index, ref = event["audio_end_ms"], event["content_index"], event.get("event_id")
        if item is None or item.type != "message" or item.role != "assistant":
            what = "not found" if item is None else "not an assistant message"
            await self.fail(f"Item {event['item_id']!r} {what}.", "invalid_value", "item_id", ref)
        elif index != 0:
            await self.fail(
                f"Invalid 'content_index': {index}; the item has one audio content part.",
                "invalid_value",
                "content_index",
                ref,
            )
        elif end_ms < 0 or end_ms > item.audio_ms:
            await self.fail(
                f"Audio content of {item.audio_ms}ms is shorter than {end_ms}ms.",
                "invalid_value",
                "audio_end_ms",
                ref,
            )
        else:
            item.truncated_ms = end_ms
            await self.send(
                {
                    "type": "conversation.item.truncated",
                    "item_id": item.id,
                    "content_index": index,
                    "audio_end_ms": end_ms,
                }
            )

    async def on_conversation_item_create(self, event: dict[str, Any]) -> None:
        """``conversation.item.create`` (text messages, function calls, function call
        outputs) -> ``conversation.item.added``/``done``."""
        raw, ref = event["item"], event.get("event_id")
        if raw.get("id") and self._find(raw["id"]) is not None:
            await self.fail(
                f"Item with id {raw['id']!r} already exists.", "invalid_value", "item.id", ref
            )
            return
        kind = raw.get("type")
        item_id = raw.get("id") or new_id("item")
        if kind == "message":
            texts = [
                str(c.get("text") or c.get("transcript") or "") for c in raw.get("content", [])
            ]
            item = PeerItem(item_id, str(raw.get("role")), " ".join(texts))
        elif kind == "function_call":
            call_id = raw.get("call_id") or new_id("call")
            item = PeerItem(
                item_id, kind, type=kind, call_id=call_id, name=raw["name"],
                arguments=raw["arguments"],
            )  # fmt: skip
            raw = {**raw, "call_id": call_id}
        elif kind == "function_call_output":
            if self._find_call(raw["call_id"]) is None:
                await self.fail(
                    f"Invalid 'item.call_id': no function_call item with call_id "
                    f"{raw['call_id']!r} in the conversation.",
                    "invalid_value",
                    "item.call_id",
                    ref,
                )
                return
            item = PeerItem(item_id, kind, raw["output"], type=kind, call_id=raw["call_id"])
        else:
            await self.fail(
                f"Invalid value: {kind!r}. The local peer creates message, function_call and "
                "function_call_output items.",
                "invalid_value",
                "item.type",
                ref,
            )
            return
        previous = self.record.items[-1].id if self.record.items else None
        self.record.items.append(item)
        echoed = {**raw, "id": item.id, "object": "realtime.item", "status": "completed"}
        for name in ("conversation.item.added", "conversation.item.done"):
            await self.send({"type": name, "item": echoed, "previous_item_id": previous})

    async def _existing(self, event: dict[str, Any]) -> PeerItem | None:
        """The item the event names, or ``None`` after answering with the API's error."""
        item = self._find(event["item_id"])
        if item is None:
            await self.fail(
                f"Item {event['item_id']!r} not found.",
                "invalid_value",
                "item_id",
                event.get("event_id"),
            )
        return item

    async def on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        """``conversation.item.delete`` -> ``conversation.item.deleted``."""
        item = await self._existing(event)
        if item is None:
            return
        self.record.items.remove(item)
        await self.send({"type": "conversation.item.deleted", "item_id": item.id})

    async def on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        """``conversation.item.retrieve`` -> ``conversation.item.retrieved``."""
        item = await self._existing(event)
        if item is None:
            return
        await self.send({"type": "conversation.item.retrieved", "item": item_json(item)})
