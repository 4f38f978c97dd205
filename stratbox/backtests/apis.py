"""Backtests REST API (/api/v1/backtests/...): create, list, detail, trades, equity, cancel, compare.

Thin views: parse, scope (selectors take the tenant, so another tenant's id is a 404), call one
service, shape the answer. Viewers read; writes need owner/member.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from stratbox.backtests.datasets import dataset_delete, dataset_import
from stratbox.backtests.models import Backtest, BacktestStatus
from stratbox.backtests.selectors import (
    backtest_get,
    backtest_list,
    backtest_trade_list,
    dataset_get,
    dataset_list,
    market_get,
    version_get_for_tenant,
)
from stratbox.backtests.serializers import (
    BacktestCompareOutput,
    BacktestCreateInput,
    BacktestEquityOutput,
    BacktestOutput,
    BacktestTradeOutput,
    BarDatasetImportInput,
    BarDatasetOutput,
    paginated,
)
from stratbox.backtests.services import (
    BarsSpec,
    backtest_cancel,
    backtest_create,
    bars_from_csv,
    bars_from_dataset,
)
from stratbox.instances.selectors import instance_get
from stratbox.instances.serializers import ConflictErrorResponse
from tenants.pagination import BoundedLimitOffsetPagination
from tenants.scopes import TokenScope
from tenants.scoping import TenantScopedApi, not_found
from tenants.throttling import BacktestCreateThrottle

COMPARED_METRICS = (
    "total_return",
    "win_rate",
    "max_drawdown",
    "sharpe",
    "sortino",
    "exposure",
    "num_trades",
)


def _backtest_or_404(request: Request, backtest_id: Any) -> Backtest:
    bt = backtest_get(tenant=request.tenant, backtest_id=backtest_id)  # type: ignore[attr-defined]
    if bt is None:
        raise not_found("Backtest not found.")
    return bt


def _bars_spec(request: Request, data: dict[str, Any], instance: Any) -> BarsSpec:
    upload = data.get("csv")
    market_code = instance.market.code if instance is not None else "CSV"
    if upload is not None:
        return bars_from_csv(
            upload.read(),
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,
            filename=getattr(upload, "name", ""),
            interval_seconds=data["interval_seconds"],
            market_code=market_code,
        )
    if "dataset" in data:
        dataset = dataset_get(tenant=request.tenant, dataset_id=data["dataset"])  # type: ignore[attr-defined]
        if dataset is None:
            raise serializers.ValidationError({"dataset": "unknown dataset"})
        return bars_from_dataset(dataset, interval_seconds=data["interval_seconds"], market_code=market_code)
    if "market" in data:
        market = market_get(market=data["market"])
        if market is None:
            raise serializers.ValidationError({"market": "unknown market"})
    else:
        market = instance.market
    return BarsSpec(
        market=market, start=data["start"], end=data["end"], interval_seconds=data["interval_seconds"]
    )


# Query parameters validated by hand (not by a serializer), so their 400s are declared here.
@extend_validation_errors(["invalid"], field_name="status", methods=["get"])
class BacktestListCreateApi(TenantScopedApi):
    write_scope = TokenScope.BACKTESTS_RUN
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    throttle_classes = [BacktestCreateThrottle]  # creation only; listing is never counted

    @extend_schema(
        operation_id="v1_backtests_list",
        parameters=[
            OpenApiParameter("status", str, enum=BacktestStatus.values),
            OpenApiParameter("limit", int, description="page size"),
            OpenApiParameter("offset", int, description="first row"),
        ],
        responses=paginated(BacktestOutput),
    )
    def get(self, request: Request) -> Response:
        qs = backtest_list(
            tenant=request.tenant,  # type: ignore[attr-defined]
            status=request.query_params.get("status") or None,
        )
        if request.query_params.get("status") and request.query_params["status"] not in BacktestStatus.values:
            raise serializers.ValidationError({"status": f"one of {', '.join(BacktestStatus.values)}"})
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(BacktestOutput(page, many=True).data)

    @extend_schema(
        request=BacktestCreateInput,
        responses={
            201: BacktestOutput,
            429: OpenApiResponse(
                ConflictErrorResponse,
                description="BACKTEST_QUOTA_EXCEEDED (the plan's unfinished backtests) or throttled",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data_in = BacktestCreateInput(data=request.data)
        data_in.is_valid(raise_exception=True)
        data = data_in.validated_data
        tenant = request.tenant  # type: ignore[attr-defined]
        version = instance = None
        if "version" in data:
            version = version_get_for_tenant(tenant=tenant, version_id=data["version"])
            if version is None:
                raise serializers.ValidationError({"version": "unknown strategy version"})
        else:
            instance = instance_get(tenant=tenant, instance_id=data["instance"])
            if instance is None:
                raise serializers.ValidationError({"instance": "unknown instance"})
        bars = _bars_spec(request, data, instance)
        bt = backtest_create(
            tenant=tenant,
            actor=request.user,
            bars=bars,
            version=version,
            instance=instance,
            config=data.get("config"),
            starting_capital=data.get("starting_capital"),
            slippage_bps=data.get("slippage_bps"),
            fee_bps=data.get("fee_bps"),
            fill_timing=data.get("fill_timing"),
            max_volume_fraction=data.get("max_volume_fraction"),
            chunk_bars=data.get("chunk_bars"),
            name=data.get("name", ""),
        )
        return Response(BacktestOutput(bt).data, status=status.HTTP_201_CREATED)


class BacktestDetailApi(TenantScopedApi):
    @extend_schema(responses=BacktestOutput)
    def get(self, request: Request, backtest_id: Any) -> Response:
        return Response(BacktestOutput(_backtest_or_404(request, backtest_id)).data)


class BacktestTradesApi(TenantScopedApi):
    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="page size"),
            OpenApiParameter("offset", int, description="first row"),
        ],
        responses=paginated(BacktestTradeOutput),
    )
    def get(self, request: Request, backtest_id: Any) -> Response:
        bt = _backtest_or_404(request, backtest_id)
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(backtest_trade_list(backtest=bt), request, view=self)
        return paginator.get_paginated_response(BacktestTradeOutput(page, many=True).data)


class BacktestEquityApi(TenantScopedApi):
    """The stored (downsampled) equity curve and the trade markers for the chart."""

    MAX_MARKERS = 2000

    @extend_schema(responses=BacktestEquityOutput)
    def get(self, request: Request, backtest_id: Any) -> Response:
        bt = _backtest_or_404(request, backtest_id)
        markers: list[dict[str, Any]] = []
        for t in backtest_trade_list(backtest=bt)[: self.MAX_MARKERS // 2]:
            markers.append(
                {"ts": t.entry_ts, "price": t.entry_price, "kind": "entry", "side": t.side, "seq": t.seq}
            )
            if t.exit_ts is not None:
                markers.append(
                    {"ts": t.exit_ts, "price": t.exit_price, "kind": "exit", "side": t.side, "seq": t.seq}
                )
        return Response(
            {
                "backtest_id": str(bt.pk),
                "status": bt.status,
                "starting_capital": str(bt.starting_capital),
                "points": bt.equity_curve,
                "markers": markers,
                "markers_truncated": (bt.num_trades or 0) > self.MAX_MARKERS // 2,
            }
        )


class BacktestCancelApi(TenantScopedApi):
    write_scope = TokenScope.BACKTESTS_RUN

    @extend_schema(
        request=None,
        responses={
            202: BacktestOutput,
            409: OpenApiResponse(ConflictErrorResponse, description="BACKTEST_FINISHED: nothing to cancel"),
        },
    )
    def post(self, request: Request, backtest_id: Any) -> Response:
        bt = _backtest_or_404(request, backtest_id)
        bt = backtest_cancel(backtest=bt, actor=request.user)
        return Response(BacktestOutput(bt).data, status=status.HTTP_202_ACCEPTED)


@extend_validation_errors(["invalid"], field_name="a", methods=["get"])
@extend_validation_errors(["invalid"], field_name="b", methods=["get"])
class BacktestCompareApi(TenantScopedApi):
    """Two backtests side by side, with b - a for every metric both have."""

    @extend_schema(
        parameters=[OpenApiParameter("a", str, required=True), OpenApiParameter("b", str, required=True)],
        responses=BacktestCompareOutput,
    )
    def get(self, request: Request) -> Response:
        ids = {}
        for key in ("a", "b"):
            value = request.query_params.get(key)
            if not value:
                raise serializers.ValidationError({key: "required: a backtest id"})
            ids[key] = value
        a = _backtest_or_404(request, ids["a"])
        b = _backtest_or_404(request, ids["b"])
        diff: dict[str, float | None] = {}
        for name in COMPARED_METRICS:
            va, vb = getattr(a, name), getattr(b, name)
            diff[name] = (vb - va) if va is not None and vb is not None else None
        if a.pnl is not None and b.pnl is not None:
            diff["pnl"] = float(b.pnl - a.pnl)
        return Response({"a": BacktestOutput(a).data, "b": BacktestOutput(b).data, "diff": diff})


class BarDatasetListCreateApi(TenantScopedApi):
    """The tenant's stored datasets (imported CSVs): list them, or import one once for many runs."""

    write_scope = TokenScope.BACKTESTS_RUN
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="v1_backtest_datasets_list",
        parameters=[
            OpenApiParameter("limit", int, description="page size"),
            OpenApiParameter("offset", int, description="first row"),
        ],
        responses=paginated(BarDatasetOutput),
    )
    def get(self, request: Request) -> Response:
        paginator = BoundedLimitOffsetPagination()
        qs = dataset_list(tenant=request.tenant)  # type: ignore[attr-defined]
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(BarDatasetOutput(page, many=True).data)

    @extend_schema(
        request=BarDatasetImportInput,
        responses={201: BarDatasetOutput, 200: BarDatasetOutput},
        description="201 with a new dataset; 200 with the stored one when this file was imported before.",
    )
    def post(self, request: Request) -> Response:
        data_in = BarDatasetImportInput(data=request.data)
        data_in.is_valid(raise_exception=True)
        upload = data_in.validated_data["csv"]
        dataset, created = dataset_import(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,
            raw=upload.read(),
            filename=getattr(upload, "name", ""),
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(BarDatasetOutput(dataset).data, status=code)


class BarDatasetDetailApi(TenantScopedApi):
    write_scope = TokenScope.BACKTESTS_RUN

    @extend_schema(responses=BarDatasetOutput)
    def get(self, request: Request, dataset_id: Any) -> Response:
        return Response(BarDatasetOutput(_dataset_or_404(request, dataset_id)).data)

    @extend_schema(
        request=None,
        responses={
            204: None,
            409: OpenApiResponse(
                ConflictErrorResponse, description="DATASET_IN_USE: a queued or running run reads it"
            ),
        },
    )
    def delete(self, request: Request, dataset_id: Any) -> Response:
        dataset_delete(dataset=_dataset_or_404(request, dataset_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _dataset_or_404(request: Request, dataset_id: Any) -> Any:
    dataset = dataset_get(tenant=request.tenant, dataset_id=dataset_id)  # type: ignore[attr-defined]
    if dataset is None:
        raise not_found("Dataset not found.")
    return dataset
