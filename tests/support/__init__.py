"""Test helpers shared by every test folder (fake servers, fixtures)."""
