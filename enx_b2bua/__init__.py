"""enx-voice call control: IVR, gateways, REST, webhooks, CDR, store, config, CLI."""
