"""Conditional requests (RFC 9110 section 13) on stream versions: ETag, If-Match, If-None-Match.

A resource backed by a stream has the strong validator `"<version>"`. A write's
`If-Match` names the version the client read: the unit of work checks it on load and
the append expects it. A read's `If-None-Match` answers 304 when it names the current
version.
"""

from __future__ import annotations

from typing import Annotated

from starlette.exceptions import HTTPException

from fastapi import Depends, Request, Response

__all__ = [
    "Conditional",
    "ConditionalDep",
    "etag",
    "if_match_holds",
    "if_none_match_holds",
    "version_of",
]


def etag(version: int) -> str:
    """The strong entity tag of a stream at `version`: `"7"`."""
    return f'"{version}"'


def version_of(tag: str) -> int | None:
    """The version a strong entity tag `"7"` names (`None` for any other tag)."""
    if len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit():
        return int(tag[1:-1])
    return None


def _tags(header: str) -> list[str] | None:
    """The entity tags of a header's list (`None` for `*`)."""
    if header.strip() == "*":
        return None
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def if_match_holds(header: str, version: int) -> bool:
    """Whether `If-Match: header` holds for a stream at `version` (0: no stream).

    Strong comparison: a weak tag (`W/"7"`) never matches.
    """
    tags = _tags(header)
    if tags is None:
        return version > 0
    return etag(version) in tags and version > 0


def if_none_match_holds(header: str, version: int) -> bool:
    """Whether `If-None-Match: header` holds (no tag matches) for a stream at `version`.

    Weak comparison: `W/"7"` matches version 7 too.
    """
    tags = _tags(header)
    if tags is None:
        return version == 0
    current = etag(version)
    return version == 0 or all(tag.removeprefix("W/") != current for tag in tags)


class Conditional:
    """Conditional reads: the response's `ETag`, and 304 for a current `If-None-Match`.

    ```python
    @router.get("/sections/{section_id}")
    async def read_section(section_id: str, store: StoreDep, conditional: ConditionalDep):
        section = await Repository(Section, store).get(section_id)
        conditional.etag(section.version)  # raises 304 Not Modified when the client has it
        return SectionView.of(section)
    ```
    """

    def __init__(self, request: Request, response: Response) -> None:
        self._request = request
        self._response = response

    def etag(self, version: int) -> None:
        """Give the response the ETag of `version`; answer 304 if the client has it."""
        tag = etag(version)
        self._response.headers["ETag"] = tag
        header = self._request.headers.get("if-none-match")
        if header is not None and not if_none_match_holds(header, version):
            raise HTTPException(304, headers={"ETag": tag})


ConditionalDep = Annotated[Conditional, Depends(Conditional)]
"""A [`Conditional`][eventcore.fastapi.Conditional] for a read endpoint."""
