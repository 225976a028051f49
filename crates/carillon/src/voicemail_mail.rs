//! E-mail of a new voicemail message: a plain SMTP client (RFC 5321:
//! EHLO, MAIL, RCPT, DATA, QUIT; no TLS, no authentication) to the relay
//! of `[voicemail] smtp`, sending a MIME message (RFC 2045/2046) with the
//! WAV attached in base64. Meant for a relay on the PBX host or LAN, as
//! Asterisk hands mail to the local `sendmail`. Runs on the voicemail
//! writer's task, bounded by a timeout; never on the signalling path.

use std::time::Duration;

use base64::Engine;
use carillon_voicemail::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The whole exchange must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("SMTP server answered {got:?} to {command}")]
    Refused { command: &'static str, got: String },
    #[error("SMTP exchange took longer than {TIMEOUT:?}")]
    Timeout,
}

/// The mail's text: headers, a line of text and the WAV attached.
pub fn compose(from: &str, to: &str, message: &Message, wav: &[u8]) -> String {
    let boundary = format!("carillon-{}", message.id);
    let caller = if message.caller_name.is_empty() {
        message.caller_num.clone()
    } else {
        format!("{} <{}>", message.caller_name, message.caller_num)
    };
    // Header values come from caller ID: no line breaks may pass.
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let encoded = base64::engine::general_purpose::STANDARD.encode(wav);
    let mut body = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 1024);
    body.push_str(&format!(
        "From: Carillon voicemail <{from}>\r\nTo: <{to}>\r\n\
         Subject: New voicemail in mailbox {mb} from {caller}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         A new message of {secs} s from {caller} is in mailbox {mb}.\r\n\r\n\
         --{boundary}\r\nContent-Type: audio/wav; name=\"{id}.wav\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{id}.wav\"\r\n\r\n",
        mb = clean(&message.mailbox),
        caller = clean(&caller),
        secs = message.duration_ms.div_ceil(1000),
        id = clean(&message.id),
    ));
    for chunk in encoded.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

/// Sends `mail` from `from` to `to` through `relay` (`host:port`).
pub async fn send(relay: &str, from: &str, to: &str, mail: &str) -> Result<(), MailError> {
    tokio::time::timeout(TIMEOUT, exchange(relay, from, to, mail))
        .await
        .map_err(|_| MailError::Timeout)?
}

async fn exchange(relay: &str, from: &str, to: &str, mail: &str) -> Result<(), MailError> {
    let stream = TcpStream::connect(relay).await?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, "greeting", "220").await?;
    for (command, line, code) in [
        ("EHLO", "EHLO carillon\r\n".to_owned(), "250"),
        ("MAIL", format!("MAIL FROM:<{from}>\r\n"), "250"),
        ("RCPT", format!("RCPT TO:<{to}>\r\n"), "250"),
        ("DATA", "DATA\r\n".to_owned(), "354"),
    ] {
        write.write_all(line.as_bytes()).await?;
        expect(&mut read, command, code).await?;
    }
    // Dot-stuffing (RFC 5321 §4.5.2), then the end of data.
    let mut data = String::with_capacity(mail.len() + 16);
    for line in mail.split_inclusive("\r\n") {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
    }
    data.push_str(".\r\n");
    write.write_all(data.as_bytes()).await?;
    expect(&mut read, "end of data", "250").await?;
    write.write_all(b"QUIT\r\n").await?;
    let _ = expect(&mut read, "QUIT", "221").await;
    Ok(())
}

/// Reads one reply (its continuation lines too) and checks its code.
async fn expect<R: AsyncBufReadExt + Unpin>(
    read: &mut R,
    command: &'static str,
    code: &str,
) -> Result<(), MailError> {
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Err(MailError::Refused {
                command,
                got: "connection closed".into(),
            });
        }
        if !line.starts_with(code) {
            return Err(MailError::Refused {
                command,
                got: line.trim_end().to_owned(),
            });
        }
        // "250-..." continues, "250 ..." ends the reply.
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_voicemail::Folder;
    use tokio::io::AsyncReadExt;

    fn message() -> Message {
        Message {
            id: "1765.7".into(),
            mailbox: "600".into(),
            caller_num: "100".into(),
            caller_name: "Eve\r\nBcc: x@y".into(),
            received_at_ms: 0,
            duration_ms: 2_500,
            folder: Folder::Inbox,
            read: false,
            path: "/vm/600/1765.7.wav".into(),
        }
    }

    #[test]
    fn the_wav_is_attached_in_base64_lines_and_caller_id_cannot_add_headers() {
        let wav: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mail = compose("vm@pbx", "q@example.com", &message(), &wav);
        assert!(mail.contains("Subject: New voicemail in mailbox 600 from Eve  Bcc: x@y <100>\r\n"));
        assert!(!mail.contains("\r\nBcc:"));
        assert!(mail.contains("Content-Disposition: attachment; filename=\"1765.7.wav\""));
        let b64: String = mail
            .split("filename=\"1765.7.wav\"\r\n\r\n")
            .nth(1)
            .unwrap()
            .split("--carillon-")
            .next()
            .unwrap()
            .lines()
            .inspect(|l| assert!(l.len() <= 76))
            .collect();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            wav
        );
    }

    #[tokio::test]
    async fn a_mail_goes_through_a_local_smtp_server_dot_stuffed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            let mut seen = String::new();
            w.write_all(b"220 sink\r\n").await.unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                seen.push_str(&line);
                if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        w.write_all(b"250 queued\r\n").await.unwrap();
                    }
                    continue;
                }
                let reply: &[u8] = match &line[..4] {
                    "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                    "DATA" => {
                        in_data = true;
                        b"354 go\r\n"
                    }
                    "QUIT" => {
                        w.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                w.write_all(reply).await.unwrap();
            }
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest).await;
            seen
        });
        send(
            &relay,
            "vm@pbx",
            "q@example.com",
            "Subject: x\r\n\r\n.leading dot\r\n",
        )
        .await
        .unwrap();
        let seen = server.await.unwrap();
        assert!(
            seen.contains("MAIL FROM:<vm@pbx>\r\nRCPT TO:<q@example.com>\r\nDATA\r\n"),
            "{seen}"
        );
        assert!(
            seen.contains("\r\n..leading dot\r\n.\r\nQUIT\r\n"),
            "{seen}"
        );
    }
}
