"""Which read requests a Modbus poll group sends: contiguous values coalesced within each device's limits.

Values of one unit, table and poll group are sorted by address and merged greedily into blocks while the next
value starts within ``max_gap`` registers of the block's end and the block stays within the device's
``max_registers_per_request`` (``max_bits_per_request`` for coils and discrete inputs). A value never spans
two requests. The plan is computed once per open; a block that the device refuses (exception 02) is split
into one request per value, so one bad address costs one value, not its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from datafactory.config.modbus import BIT_TABLES, ModbusDevice, ModbusRegister, ModbusSource, ModbusTable
from gateway.polling import FastRun


@dataclass(slots=True)
class Block:
    unit: int
    table: ModbusTable
    start: int
    count: int
    items: list[int] = field(default_factory=list)  # indices into the source's registers
    # Filled in by the adapter once per plan: the values decoded all at once and passed on as read (a FastRun
    # and the function that decodes a response into them), and the indices of the others (a string, a bit
    # field, scaling or a deadband: the codec and the normaliser, one by one).
    fast: FastRun | None = None
    unpack: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None
    decoded: list[int] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.count


def plan_group(source: ModbusSource, indices: list[int], *, coalesce: bool = True) -> list[Block]:
    """The read requests for the registers at ``indices`` (one poll group)."""
    devices = {d.unit_id: d for d in source.devices}
    regs = source.registers
    keyed = sorted(indices, key=lambda i: (regs[i].unit_id, regs[i].table.value, regs[i].address))
    blocks: list[Block] = []
    for i in keyed:
        r = regs[i]
        span = r.register_count()
        last = blocks[-1] if blocks else None
        if coalesce and last is not None and last.unit == r.unit_id and last.table is r.table:
            device = devices.get(r.unit_id) or ModbusDevice(unit_id=r.unit_id)
            limit = device.max_bits_per_request if r.table in BIT_TABLES else device.max_registers_per_request
            new_end = max(last.end, r.address + span)
            if r.address <= last.end + device.max_gap and new_end - last.start <= limit:
                last.count = new_end - last.start
                last.items.append(i)
                continue
        blocks.append(Block(r.unit_id, r.table, r.address, span, [i]))
    return blocks


def split(block: Block, registers: list[ModbusRegister]) -> list[Block]:
    """One block per value of ``block`` (after the device refused the block as a whole)."""
    return [
        Block(block.unit, block.table, registers[i].address, registers[i].register_count(), [i]) for i in block.items
    ]
