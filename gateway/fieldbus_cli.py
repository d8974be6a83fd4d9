"""On-site tools: ``datafactory modbus scan`` and ``datafactory s7 read``.

``modbus scan`` reads a register range and prints every register raw, then every 32- and 64-bit reading of
it in each byte order, so an integrator can spot the order in which the meter's known value (a voltage near
230, an energy counter) appears. ``s7 read`` reads one address in the config syntax and prints the value.
Expected failures (no connection, a refused range, a malformed address) are one line on stderr, exit code 1.
"""

from __future__ import annotations

import asyncio

import click

from datafactory.config.modbus import ByteOrder, ModbusType
from datafactory.fieldbus.modbus_codec import decode


@click.group()
def modbus() -> None:
    """Modbus tools."""


_TABLES = {"holding": "read_holding_registers", "input": "read_input_registers"}


@modbus.command()
@click.argument("host")
@click.option("--port", default=502, show_default=True, help="TCP port.")
@click.option("--unit", default=1, show_default=True, help="Unit (slave) id.")
@click.option("--table", type=click.Choice(sorted(_TABLES)), default="holding", show_default=True,
              help="Modbus table to read: holding or input registers, coils or discrete inputs.")
@click.option("--address", default=0, show_default=True, help="First 0-based register address.")
@click.option("--count", default=8, show_default=True, help="Registers to read (1-125).")
@click.option("--timeout", default=2.0, show_default=True, help="Response timeout in seconds.")
def scan(host: str, port: int, unit: int, table: str, address: int, count: int, timeout: float) -> None:  # noqa: PLR0917 - one parameter per click option
    """Read COUNT registers at ADDRESS and print them decoded in every byte/word order."""
    if not 1 <= count <= 125:
        raise click.BadParameter("1-125 registers per request", param_hint="--count")
    regs = asyncio.run(
        _read_registers(host, port, unit=unit, table=table, address=address, count=count, timeout=timeout)
    )
    click.echo(f"{'address':>7}  {'hex':>6}  {'uint16':>6}  {'int16':>6}")
    for i, r in enumerate(regs):
        click.echo(f"{address + i:>7}  0x{r:04X}  {r:>6}  {decode([r], ModbusType.INT16):>6}")
    for vtype, width in (
        (ModbusType.FLOAT32, 2),
        (ModbusType.UINT32, 2),
        (ModbusType.INT32, 2),
        (ModbusType.FLOAT64, 4),
    ):
        click.echo(f"\n{vtype.value}: " + "  ".join(f"{o.value:>14}" for o in ByteOrder))
        for i in range(0, len(regs) - width + 1):
            cells = [f"{decode(regs[i : i + width], vtype, o)!s:>14.14}" for o in ByteOrder]
            click.echo(f"{address + i:>7}: " + "  ".join(cells))


async def _read_registers(
    host: str, port: int, *, unit: int, table: str, address: int, count: int, timeout: float
) -> list[int]:
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.exceptions import ModbusException

    client = AsyncModbusTcpClient(host, port=port, timeout=timeout, retries=0, reconnect_delay=0)
    try:
        if not await client.connect():
            raise click.ClickException(f"cannot connect to {host}:{port}: is the device on and the port right?")
        try:
            rr = await getattr(client, _TABLES[table])(address, count=count, device_id=unit)
        except ModbusException as err:
            raise click.ClickException(f"{host}:{port} unit {unit}: {err}") from err
        if rr.isError():
            raise click.ClickException(
                f"unit {unit} refused {table} {address}+{count}: Modbus exception {rr.exception_code:#04x}"
            )
        return list(rr.registers)
    finally:
        client.close()


@click.group()
def s7() -> None:
    """Siemens S7 tools."""


@s7.command()
@click.argument("host")
@click.argument("address")
@click.option("--port", default=102, show_default=True, help="ISO-on-TCP port.")
@click.option("--rack", default=0, show_default=True, help="PLC rack number (0 for S7-1200/1500).")
@click.option("--slot", default=1, show_default=True, help="CPU slot (1 for S7-1200/1500, 2 for S7-300).")
def read(host: str, address: str, port: int, rack: int, slot: int) -> None:
    """Read one ADDRESS (e.g. DB10.DBD4:REAL, M0.1) and print its value."""
    from datafactory.config.s7 import parse_s7_address

    try:
        addr = parse_s7_address(address)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(repr(asyncio.run(_read_s7(host, port, rack, slot, addr))))


async def _read_s7(host: str, port: int, rack: int, slot: int, addr: object) -> object:
    from snap7.async_client import AsyncClient
    from snap7.error import S7Error

    from datafactory.config.s7 import S7Address
    from datafactory.fieldbus import s7_codec
    from gateway.sources.s7 import _AREA

    assert isinstance(addr, S7Address)
    client = AsyncClient()
    try:
        await asyncio.wait_for(client.connect(host, rack, slot, tcp_port=port), 5)
        data = await asyncio.wait_for(client.read_area(_AREA[addr.area], addr.db, addr.start, addr.size), 5)
        return s7_codec.decode(data, addr)
    except (S7Error, OSError, TimeoutError, s7_codec.DecodeError) as err:
        raise click.ClickException(f"{host}:{port} rack {rack} slot {slot}: {type(err).__name__}: {err}") from err
    finally:
        await client.disconnect()
