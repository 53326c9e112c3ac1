//! Integration tests, one binary of modules (fast to link): each module drives
//! the real code over real HTTP on 127.0.0.1:0.

mod admin_api;
mod alert_channels;
mod bad_config;
mod bad_responses;
mod bad_webhooks;
mod capture;
mod cli;
mod cli_conventions;
mod config;
mod config_errors;
mod crash;
mod cron;
mod daemon;
mod drill;
mod examples;
mod flood;
mod http_gateway;
mod http_poll;
mod junit;
mod metrics;
mod mock_carrier;
mod mock_faults;
mod mock_vonage;
mod own_api;
mod personal_data;
mod python;
mod reliability;
mod reload;
mod server;
mod sink_outage;
mod store;
mod twilio_sdk;
mod vonage_e2e;
mod webhook;
mod webhook_trust;
