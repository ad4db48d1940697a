"""Braiins OS+: the gRPC API on 50051, built on pyasic's shipped protobuf code.

Over 300 lines: one firmware's gRPC surface, as the real API groups it.

gRPC: Login puts a token in the ``authorization`` initial metadata; every other call must
carry it. Pause/resume mining, set power target, miner details and stats, hashboards,
cooling, active performance mode, pool groups, locate-device status, and the tuner: its
saved power-target profiles (``ListTargetProfiles``), its state (``GetTunerState``) and the
power-target range (``GetConstraints``). The 4028 side is in ``braiins_api``.
"""

from __future__ import annotations

import secrets
from typing import Any

import grpclib.const
from grpclib import GRPCError, Status
from grpclib.events import RecvRequest, listen
from grpclib.server import Server, Stream
from pyasic.web.braiins_os.proto.braiins.bos.v1 import (
    ActionsServiceBase,
    AuthenticationServiceBase,
    BooleanConstraint,
    BosVersion,
    ConfigurationServiceBase,
    CoolingServiceBase,
    FanState,
    GetConstraintsResponse,
    GetCoolingStateResponse,
    GetHashboardsResponse,
    GetMinerConfigurationResponse,
    GetMinerDetailsResponse,
    GetMinerStatsResponse,
    GetPoolGroupsResponse,
    GetTunerStateResponse,
    GigaHashrate,
    Hashboard,
    ListTargetProfilesResponse,
    LocateDeviceStatusResponse,
    LoginRequest,
    LoginResponse,
    MinerIdentity,
    MinerPowerStats,
    MinerServiceBase,
    PauseMiningResponse,
    PerformanceMode,
    PerformanceServiceBase,
    Pool,
    PoolConfiguration,
    PoolGroup,
    PoolGroupConfiguration,
    PoolServiceBase,
    PoolStats,
    Power,
    PowerConstraints,
    PowerTargetMode,
    RealHashrate,
    ResumeMiningResponse,
    SetPowerTargetRequest,
    SetPowerTargetResponse,
    Temperature,
    TemperatureSensor,
    TunerConfiguration,
    TunerConstraints,
    TunerMode,
    TunerPerformanceMode,
    WorkSolverStats,
)

from simulators.miners import replies
from simulators.miners.braiins_tuner import Tuner
from simulators.miners.miner import Refused, SimMiner
from simulators.miners.state import Mode

GRPC_PORT = 50051
BOS_VERSION = "2024-09-06-0-11012d53-24.08-plus"
DEFAULT_PASSWORD = "root"  # noqa: S105  (the factory default pyasic also assumes)
_LOGIN = "/braiins.bos.v1.AuthenticationService/Login"


def _gh(th: float) -> GigaHashrate:
    return GigaHashrate(gigahash_per_second=th * 1000.0)


def _refuse(result: Refused | object) -> None:
    if isinstance(result, Refused):
        raise GRPCError(Status.FAILED_PRECONDITION, result.reason)


class _Auth(AuthenticationServiceBase):  # type: ignore[misc]
    """Login: a token in the initial metadata, as BOS+ does."""

    def __init__(self, tokens: set[str], password: str) -> None:
        self._tokens = tokens
        self._password = password

    async def _login(self, stream: Stream[Any, Any]) -> None:
        request = await stream.recv_message()
        assert isinstance(request, LoginRequest)
        if request.username != "root" or request.password != self._password:
            raise GRPCError(Status.UNAUTHENTICATED, "Invalid credentials")
        token = secrets.token_urlsafe(12)
        self._tokens.add(token)
        await stream.send_initial_metadata(metadata={"authorization": token})
        await stream.send_message(LoginResponse(token=token))

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        mapping: dict[str, grpclib.const.Handler] = super().__mapping__()
        mapping[_LOGIN] = grpclib.const.Handler(
            self._login, grpclib.const.Cardinality.UNARY_UNARY, LoginRequest, LoginResponse
        )
        return mapping


class _Actions(ActionsServiceBase):  # type: ignore[misc]
    def __init__(self, miner: SimMiner) -> None:
        self.miner = miner
        self.locate = False

    async def pause_mining(self, _request: object) -> PauseMiningResponse:
        already = self.miner.read().mode is Mode.SLEEP
        _refuse(self.miner.command(self.miner.state.sleep))
        return PauseMiningResponse(already_paused=already)

    async def resume_mining(self, _request: object) -> ResumeMiningResponse:
        already = self.miner.read().mode is Mode.NORMAL
        _refuse(self.miner.command(self.miner.state.wake))
        return ResumeMiningResponse(already_mining=already)

    async def get_locate_device_status(self, _request: object) -> LocateDeviceStatusResponse:
        return LocateDeviceStatusResponse(enabled=self.locate)

    async def set_locate_device_status(self, request: Any) -> LocateDeviceStatusResponse:
        self.locate = bool(request.enable)
        return LocateDeviceStatusResponse(enabled=self.locate)


class _Performance(PerformanceServiceBase):  # type: ignore[misc]
    def __init__(self, miner: SimMiner, tuner: Tuner) -> None:
        self.miner = miner
        self.tuner = tuner

    async def get_tuner_state(self, _request: object) -> GetTunerStateResponse:
        return self.tuner.state()

    async def list_target_profiles(self, _request: object) -> ListTargetProfilesResponse:
        return ListTargetProfilesResponse(power_target_profiles=self.tuner.saved())

    async def set_power_target(self, request: SetPowerTargetRequest) -> SetPowerTargetResponse:
        watt = int(request.power_target.watt)
        model = self.miner.model
        if not model.min_power_target_w <= watt <= model.max_power_target_w:
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"Power target {watt} W is out of range "
                f"{model.min_power_target_w:.0f}..{model.max_power_target_w:.0f} W",
            )

        def apply(now: float) -> None:
            self.miner.state.set_power_target(now, watt)
            self.tuner.set_target(watt, now)

        _refuse(self.miner.command(apply))
        return SetPowerTargetResponse(power_target=Power(watt=watt))

    async def get_active_performance_mode(self, _request: object) -> PerformanceMode:
        watt = round(self.miner.read().power_target_w)
        target = PowerTargetMode(power_target=Power(watt=watt))
        return PerformanceMode(tuner_mode=TunerPerformanceMode(power_target=target))


class _Cooling(CoolingServiceBase):  # type: ignore[misc]
    def __init__(self, miner: SimMiner) -> None:
        self.miner = miner

    async def get_cooling_state(self, _request: object) -> GetCoolingStateResponse:
        reading = self.miner.read()
        fans = [FanState(position=i, rpm=rpm) for i, rpm in enumerate(reading.fan_rpm)]
        hottest = TemperatureSensor(temperature=Temperature(degree_c=max(reading.chip_temp_c)))
        return GetCoolingStateResponse(fans=fans, highest_temperature=hottest)


class _Miner(MinerServiceBase):  # type: ignore[misc]
    def __init__(self, miner: SimMiner) -> None:
        self.miner = miner

    async def get_miner_details(self, _request: object) -> GetMinerDetailsResponse:
        miner = self.miner
        reading = miner.read()
        return GetMinerDetailsResponse(
            uid=miner.serial,
            miner_identity=MinerIdentity(name=miner.model.name, miner_model=miner.model.name),
            bos_version=BosVersion(current=BOS_VERSION, major="24.08", bos_plus=True),
            hostname=miner.hostname,
            mac_address=miner.mac,
            sticker_hashrate=_gh(miner.model.nameplate_hashrate_th),
            bosminer_uptime_s=int(reading.uptime_s),
            system_uptime_s=int(reading.uptime_s),
            serial_number=miner.serial,
        )

    async def get_miner_stats(self, _request: object) -> GetMinerStatsResponse:
        reading = self.miner.read()
        stats = WorkSolverStats(
            real_hashrate=RealHashrate(
                last_5_s=_gh(reading.reported_hashrate_th),
                last_1_m=_gh(reading.reported_hashrate_th),
            ),
            nominal_hashrate=_gh(self.miner.model.hashrate_at_th(reading.power_target_w)),
        )
        watts = self.miner.reported_watts_uint()
        power = MinerPowerStats(approximated_consumption=Power(watt=watts))
        return GetMinerStatsResponse(miner_stats=stats, power_stats=power)

    async def get_hashboards(self, _request: object) -> GetHashboardsResponse:
        reading = self.miner.read()
        boards = [
            Hashboard(
                id=str(b + 1),
                enabled=True,
                chips_count=self.miner.model.chips_per_board,
                board_temp=Temperature(degree_c=reading.board_temp_c[b]),
                highest_chip_temp=TemperatureSensor(
                    temperature=Temperature(degree_c=reading.chip_temp_c[b])
                ),
                stats=WorkSolverStats(
                    real_hashrate=RealHashrate(last_5_s=_gh(reading.board_hashrate_th[b]))
                ),
                serial_number=f"{self.miner.serial}B{b}",
            )
            for b in range(self.miner.model.hashboards)
        ]
        return GetHashboardsResponse(hashboards=boards)


class _Pools(PoolServiceBase):  # type: ignore[misc]
    def __init__(self, miner: SimMiner) -> None:
        self.miner = miner

    async def get_pool_groups(self, _request: object) -> GetPoolGroupsResponse:
        reading = self.miner.read()
        alive = reading.load > 0
        pool = Pool(
            uid="0",
            url=replies.POOL_URL,
            user=f"hashspark.{self.miner.hostname}",
            enabled=True,
            alive=True,
            active=alive,
            # pyasic reads pool["stats"]: it must not be all defaults (omitted on the wire)
            stats=PoolStats(accepted_shares=1 + int(reading.uptime_s // 10)),
        )
        return GetPoolGroupsResponse(pool_groups=[PoolGroup(name="Default", pools=[pool])])


class _Configuration(ConfigurationServiceBase):  # type: ignore[misc]
    def __init__(self, miner: SimMiner) -> None:
        self.miner = miner

    async def get_constraints(self, _request: object) -> GetConstraintsResponse:
        model = self.miner.model
        power = PowerConstraints(
            default=Power(watt=round(model.nameplate_power_w)),
            min=Power(watt=round(model.min_power_target_w)),
            max=Power(watt=round(model.max_power_target_w)),
        )
        return GetConstraintsResponse(
            tuner_constraints=TunerConstraints(
                power_target=power, enabled=BooleanConstraint(default=True)
            )
        )

    async def get_miner_configuration(self, _request: object) -> GetMinerConfigurationResponse:
        watt = round(self.miner.read().power_target_w)
        pool = PoolConfiguration(
            uid="0",
            url=replies.POOL_URL,
            user=f"hashspark.{self.miner.hostname}",
            password="x",  # noqa: S106  (pool passwords are conventionally "x")
            enabled=True,
        )
        return GetMinerConfigurationResponse(
            pool_groups=[PoolGroupConfiguration(uid="0", name="Default", pools=[pool])],
            tuner=TunerConfiguration(
                enabled=True, tuner_mode=TunerMode.POWER_TARGET, power_target=Power(watt=watt)
            ),
        )


class GrpcEndpoint:
    """One miner's gRPC server on 50051."""

    def __init__(
        self,
        miner: SimMiner,
        port: int = GRPC_PORT,
        password: str = DEFAULT_PASSWORD,
        tuner: Tuner | None = None,
    ) -> None:
        self._miner = miner
        self._port = port
        self._tokens: set[str] = set()
        self.tuner = Tuner(miner) if tuner is None else tuner
        self._services: list[Any] = [
            _Auth(self._tokens, password),
            _Actions(miner),
            _Performance(miner, self.tuner),
            _Cooling(miner),
            _Miner(miner),
            _Pools(miner),
            _Configuration(miner),
        ]
        self._server: Server | None = None

    async def _on_request(self, event: RecvRequest) -> None:
        await self._miner.gate()
        if event.method_name == _LOGIN:
            return
        if event.metadata.get("authorization") not in self._tokens:
            raise GRPCError(Status.UNAUTHENTICATED, "Invalid or missing token")

    async def start(self) -> None:
        """Listen on ``miner.ip:50051``."""
        if self._server is not None:
            return
        server = Server(self._services)
        listen(server, RecvRequest, self._on_request)
        await server.start(self._miner.ip, self._port, reuse_address=True)
        self._server = server

    async def stop(self) -> None:
        """Stop listening and drop open connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
