"""Identifier formats shared by every event."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

KEY_ID_PATTERN = r"^key_[A-Za-z0-9]{6,64}$"
ACCOUNT_ID_PATTERN = r"^acc_[A-Za-z0-9]{3,64}$"

KeyId = Annotated[str, Field(pattern=KEY_ID_PATTERN)]
AccountId = Annotated[str, Field(pattern=ACCOUNT_ID_PATTERN)]
