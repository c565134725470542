# ruff: noqa: RUF001  (notices in Russian, Chinese, Korean: their letters and colons are meant)
"""Writes the bounce corpus: realistic feedback mail in the layouts of many MTA families.

Every message here was written for this project in the style of each family's
notifications (no text copied from other corpora).  Each ``NAME.eml`` gets a
``NAME.json`` with what a correct reader finds: ``kind``, ``recipients`` and the
``verdict`` (hard / soft / sender, or null when not a bounce).

    python tests/data/dsn/corpus/generate.py     # rewrites the files beside it
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent
RNG = random.Random(20261207)
SENDER = "news@sender.example.org"
RETURN = "b+ab2cd3ef4gh5ij6kl7mn@sender.example.org"

FIRST = ["ann", "bob", "chloe", "dev", "eva", "farid", "greta", "hiro", "ines", "jonas", "kofi",
         "lena", "mateo", "nora", "oskar", "priya", "quinn", "rosa", "sven", "tomas", "uma",
         "vik", "wen", "ximena", "yusuf", "zoe"]
LAST = ["smith", "meyer", "rossi", "dubois", "tanaka", "kowalski", "silva", "novak", "jensen",
        "garcia", "ivanova", "okafor", "larsen", "moreau", "kim"]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "example.net", "mail.example.com",
           "gmx.de", "web.de", "orange.fr", "laposte.net", "mail.ru", "yandex.ru", "libero.it",
           "qq.com", "naver.com", "uol.com.br", "fastmail.com", "icloud.com", "aol.com", "comcast.net"]


def person(domain: str | None = None) -> str:
    style = RNG.randrange(4)
    first, last = RNG.choice(FIRST), RNG.choice(LAST)
    local = [f"{first}.{last}", f"{first}{RNG.randrange(10, 99)}", f"{first[0]}{last}", f"{first}_{last}"][style]
    return f"{local}@{domain or RNG.choice(DOMAINS)}"


# (status, SMTP reply text with {a} for the address, verdict)
HARD = [
    ("5.1.1", "550 5.1.1 <{a}>: Recipient address rejected: User unknown in virtual mailbox table"),
    ("5.1.1", "550-5.1.1 The email account that you tried to reach does not exist. Please try "
              "double-checking the recipient's email address for typos or unnecessary spaces."),
    ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"),
    ("5.2.1", "550 5.2.1 The email account that you tried to reach is disabled."),
    ("5.1.1", "550 5.1.1 <{a}>... User unknown"),
    ("5.4.4", "Host or domain name not found. Name service error for name=nowhere-mail.example "
              "type=A: Host not found"),
    ("5.0.0", "550 5.0.0 <{a}>... No such user"),
    ("5.1.1", "550 5.1.1 Mailbox does not exist"),
    ("5.1.1", "550 5.1.1 <{a}>: Recipient address rejected: undeliverable address: unknown user"),
    ("5.1.2", "550 5.1.2 Bad destination system address: domain does not exist"),
    ("5.1.6", "550 5.1.6 Recipient addresses in this domain no longer accept mail"),
    ("5.2.1", "550 5.2.1 Mailbox disabled, not accepting messages"),
    ("5.1.1", "550 5.1.1 unknown or illegal alias: {a}"),
    ("5.4.1", "550 5.4.1 Recipient address rejected: Access denied. For more information see "
              "https://aka.ms/EXOSmtpErrors [AM4PEPF00027A6C.eurprd04.prod.outlook.com]"),
    ("5.0.0", "550 5.0.0 Requested action not taken: mailbox unavailable (user does not exist)"),
]
SOFT = [
    ("5.2.2", "552 5.2.2 <{a}>: Mailbox full"),
    ("4.2.2", "452-4.2.2 The email account that you tried to reach is over quota. Please direct "
              "the recipient to the storage page."),
    ("4.4.7", "Delivery time expired: the message could not be delivered within 5 days"),
    ("4.2.0", "451 4.2.0 Mailbox temporarily unavailable, try again later"),
    ("4.4.1", "connect to mx1.mail.example.com[198.51.100.7]:25: Connection timed out"),
    ("4.3.0", "451 4.3.0 Temporary server error. Please try again later"),
    ("5.2.2", "552 5.2.2 Quota exceeded (mailbox for user is full)"),
    ("4.7.1", "450 4.7.1 <{a}>: Recipient address rejected: Greylisted, please retry in 5 minutes"),
    ("4.4.2", "421 4.4.2 mx.example.net Error: timeout exceeded"),
    ("5.4.7", "retry timeout exceeded"),
]
SENDER = [
    ("5.7.26", "550-5.7.26 Unauthenticated email from sender.example.org is not accepted due to "
               "domain's DMARC policy. Please contact the administrator of sender.example.org domain."),
    ("5.7.26", "550-5.7.26 This mail has been blocked because the sender is unauthenticated. "
               "Gmail requires all senders to authenticate with either SPF or DKIM."),
    ("5.7.1", "550-5.7.1 Our system has detected that this message is likely unsolicited mail. "
              "To reduce the amount of spam sent to Gmail, this message has been blocked."),
    ("5.7.28", "550-5.7.28 There's been an unusual rate of unsolicited mail originating from your "
               "IP address. To protect our users from spam, mail sent from your IP address has been blocked."),
    ("4.7.28", "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating "
               "from your IP address. To protect our users from spam, mail has been temporarily rate limited."),
    ("5.2.1", "550-5.2.1 The user you are trying to contact is receiving mail at a rate that "
              "prevents additional messages from being delivered."),
    ("4.2.1", "450-4.2.1 The user you are trying to contact is receiving mail at a rate that "
              "prevents additional messages from being delivered. Please resend your message later."),
    ("5.7.606", "550 5.7.606 Access denied, banned sending IP [203.0.113.9]. To request removal "
                "from this list please visit https://sender.office.com/"),
    ("5.7.708", "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP."),
    ("5.7.509", "550 5.7.509 Access denied, sending domain sender.example.org does not pass DMARC "
                "verification and has a DMARC policy of reject."),
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using "
              "zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.9"),
    ("5.7.1", "550 5.7.1 Message rejected due to content restrictions"),
    ("5.7.23", "550 5.7.23 The message was rejected because of Sender Policy Framework violation"),
    ("5.1.8", "553 5.1.8 <news@sender.example.org>... Domain of sender address "
              "news@sender.example.org does not exist"),
    ("5.1.7", "550 5.1.7 <news@sender.example.org>: Sender address rejected: Domain not found"),
    ("5.4.6", "554 5.4.6 Too many hops"),
    ("5.4.0", "554 5.4.0 Error: too many hops"),
    ("5.7.1", "550 5.7.1 Unable to relay for {a}"),
    ("5.7.9", "554 5.7.9 Message not accepted for policy reasons. See https://postmaster.example.com/error-codes"),
    ("4.7.0", "421 4.7.0 [TS04] Messages from 203.0.113.9 temporarily deferred due to unexpected "
              "volume or user complaints"),
    ("5.0.0", "550 5.0.0 Message rejected"),
    ("5.7.1", "554 5.7.1 [P2] Message blocked due to spam content in the message"),
    ("5.7.350", "550 5.7.350 Remote server returned message detected as spam"),
    ("5.3.4", "552 5.3.4 Message size exceeds fixed limit"),
    ("5.7.25", "550-5.7.25 The IP address sending this message does not have a PTR record setup"),
    ("5.7.1", "550 5.7.1 Delivery not authorized, message refused: the sending IP is listed on a DNSBL"),
    ("5.5.0", "554 5.5.0 Transaction failed"),
    ("5.7.0", "550 5.7.0 Authentication required for this sender domain (DKIM signature missing)"),
]
POOLS = {"hard": HARD, "soft": SOFT, "sender": SENDER}


def pick(verdict: str) -> tuple[str, str]:
    return RNG.choice(POOLS[verdict])


def date() -> str:
    d = RNG.randrange(1, 28)
    return f"Mon, {d:02d} Nov 2026 {RNG.randrange(24):02d}:{RNG.randrange(60):02d}:{RNG.randrange(60):02d} +0000"


def original(rcpt: str, *, full: bool = True) -> str:
    head = (
        f"Return-Path: <{RETURN}>\n"
        f"From: Sender News <{SENDER}>\n"
        f"Reply-To: help@sender.example.org\n"
        f"To: {rcpt}\n"
        f"Subject: The November issue\n"
        f"Date: {date()}\n"
        f"Message-ID: <{RNG.getrandbits(64):x}.{RNG.getrandbits(32):x}@sender.example.org>\n"
        f"List-Unsubscribe: <https://lists.example.org/u/abc>\n"
        f"X-Lunamail-Campaign: c-{RNG.getrandbits(24):x}\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\n"
    )
    if full:
        head += "\nHello, this is our November issue. Write to help@sender.example.org with questions.\n"
    return head


def multipart_report(frm: str, subject: str, text: str, dsn: str, orig: str, *, headers_only: bool = False,
                     to: str = RETURN, extra: str = "") -> str:
    b = f"=_{RNG.getrandbits(48):x}"
    ctype = "text/rfc822-headers" if headers_only else "message/rfc822"
    return (
        f"From: {frm}\nTo: {to}\nSubject: {subject}\nDate: {date()}\n{extra}MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"\n\n'
        f"This is a MIME-encapsulated message.\n\n--{b}\nContent-Type: text/plain; charset=us-ascii\n\n{text}\n"
        f"--{b}\nContent-Type: message/delivery-status\n\n{dsn}\n"
        f"--{b}\nContent-Type: {ctype}\n\n{orig}\n--{b}--\n"
    )


def plain(frm: str, subject: str, body: str, *, to: str = RETURN, extra: str = "") -> str:
    return (f"From: {frm}\nTo: {to}\nSubject: {subject}\nDate: {date()}\n{extra}MIME-Version: 1.0\n"
            f"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}")


def dsn_fields(mta: str, rcpts: list[tuple[str, str, str]], action: str = "failed") -> str:
    out = [f"Reporting-MTA: dns; {mta}\nArrival-Date: {date()}\n"]
    for a, st, diag in rcpts:
        out.append(f"Final-Recipient: rfc822; {a}\nAction: {action}\nStatus: {st}\n"
                   f"Diagnostic-Code: smtp; {diag.format(a=a)}\n")
    return "\n".join(out)


# ------------------------------------------------------------------ families


def postfix(rcpts: list[tuple[str, str, str]]) -> str:
    mta = "mx2.mail.example.net"
    lines = "\n".join(f"<{a}>: host {mta}[192.0.2.25] said: {d.format(a=a)} (in reply to RCPT TO command)"
                      for a, _, d in rcpts)
    text = (f"This is the mail system at host {mta}.\n\nI'm sorry to have to inform you that your message could "
            "not\nbe delivered to one or more recipients. It's attached below.\n\nFor further assistance, please "
            "send mail to postmaster.\n\nIf you do so, please include this problem report. You can\ndelete your own "
            "text from the attached returned message.\n\n                   The mail system\n\n" + lines + "\n")
    return multipart_report(f"MAILER-DAEMON@{mta} (Mail Delivery System)", "Undelivered Mail Returned to Sender",
                            text, dsn_fields(mta, rcpts), original(rcpts[0][0]), headers_only=RNG.random() < 0.5)


def exim(rcpts: list[tuple[str, str, str]]) -> str:
    body = ("This message was created automatically by mail delivery software.\n\nA message that you sent could "
            "not be delivered to one or more of its\nrecipients. This is a permanent error. The following "
            "address(es) failed:\n\n")
    for a, _, d in rcpts:
        body += (f"  {a}\n    host mx.{a.split('@')[1]} [198.51.100.20]\n    SMTP error from remote mail server "
                 f"after RCPT TO:<{a}>:\n    {d.format(a=a)}\n\n")
    body += "------ This is a copy of the message, including all the headers. ------\n\n" + original(rcpts[0][0])
    extra = "X-Failed-Recipients: " + ", ".join(a for a, _, _ in rcpts) + "\n" if RNG.random() < 0.6 else ""
    return plain("Mail Delivery System <Mailer-Daemon@relay.example.com>", "Mail delivery failed: returning "
                 "message to sender", body, extra=extra + "Auto-Submitted: auto-replied\n")


def sendmail(rcpts: list[tuple[str, str, str]]) -> str:
    mta = "smtp.example.edu"
    text = (f"The original message was received at {date()}\nfrom relay.sender.example.org [203.0.113.9]\n\n"
            "   ----- The following addresses had permanent fatal errors -----\n")
    for a, _, d in rcpts:
        text += f"<{a}>\n    (reason: {d.format(a=a)})\n"
    text += "\n   ----- Transcript of session follows -----\n"
    for a, _, d in rcpts:
        text += f"... while talking to mx.{a.split('@')[1]}.:\n>>> RCPT To:<{a}>\n<<< {d.format(a=a)}\n"
    if RNG.random() < 0.5:
        return multipart_report(f"Mail Delivery Subsystem <MAILER-DAEMON@{mta}>",
                                "Returned mail: see transcript for details", text, dsn_fields(mta, rcpts),
                                original(rcpts[0][0]))
    # older sendmail: the whole thing as plain text, the original quoted at the end
    body = text + "\n   ----- Original message follows -----\n\n" + original(rcpts[0][0])
    return plain(f"Mail Delivery Subsystem <MAILER-DAEMON@{mta}>", "Returned mail: User unknown", body)


def qmail(rcpts: list[tuple[str, str, str]]) -> str:
    body = ("Hi. This is the qmail-send program at mail.example.com.\nI'm afraid I wasn't able to deliver your "
            "message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't "
            "work out.\n\n")
    for a, _st, d in rcpts:
        body += f"<{a}>:\n198.51.100.3 does not like recipient.\nRemote host said: {d.format(a=a)}\nGiving up on 198.51.100.3.\n\n"
    body += "--- Below this line is a copy of the message.\n\n" + original(rcpts[0][0])
    return plain("MAILER-DAEMON@mail.example.com", "failure notice", body)


def exchange(rcpts: list[tuple[str, str, str]]) -> str:
    a, st, d = rcpts[0]
    dom = a.split("@")[1]
    text = (f"Your message to {a} couldn't be delivered.\n\n{a.split('@')[0]} wasn't found at {dom}.\n\n"
            "sender    Office 365    Action Required\n\n\nHow to Fix It\nThe address may be misspelled or may "
            "not exist. Try one or more of the following:\n\nDiagnostic information for administrators:\n\n"
            f"Generating server: AM0PR04MB1234.eurprd04.prod.outlook.com\n\n{a}\nRemote Server returned "
            f"'{d.format(a=a)}'\n\nOriginal message headers:\n\n" + original(a, full=False))
    if st.startswith("5.7") or st.startswith("4.7"):
        text = text.replace(f"{a.split('@')[0]} wasn't found at {dom}.", "Your message was rejected by the "
                            "recipient's email system.")
    if RNG.random() < 0.5:
        return multipart_report("Microsoft Outlook <MAILER-DAEMON@outlook.example.com>", "Undeliverable: The "
                                "November issue", text, dsn_fields("AM0PR04MB1234.eurprd04.prod.outlook.com", rcpts),
                                original(a), headers_only=True)
    return plain("postmaster@outlook.example.com", "Undeliverable: The November issue", text)


def exchange2010(rcpts: list[tuple[str, str, str]]) -> str:
    body = "Delivery has failed to these recipients or groups:\n\n"
    for a, st, _ in rcpts:
        why = ("The e-mail address you entered couldn't be found. Please check the recipient's e-mail address."
               if st.startswith("5.1") else "The recipient's e-mail system didn't accept this message.")
        body += f"{a}\n{why}\n\n"
    body += "\n\n\n\nDiagnostic information for administrators:\n\nGenerating server: EXCH01.corp.example.com\n\n"
    for a, _, d in rcpts:
        body += f"{a}\n#{d.format(a=a)} ##\n\n"
    body += "Original message headers:\n\n" + original(rcpts[0][0], full=False)
    return plain("Microsoft Exchange <postmaster@corp.example.com>", "Undeliverable: The November issue", body)


def gmail(rcpts: list[tuple[str, str, str]]) -> str:
    a, st, d = rcpts[0]
    title = "Address not found" if st.startswith("5.1") else "Message blocked" if "7" in st[:3] else "Message not delivered"
    text = (f"** {title} **\n\nYour message wasn't delivered to {a} because the address couldn't be found, or is "
            "unable to receive mail.\n\nLearn more here: https://support.google.com/mail/?p=NoSuchUser\n\n"
            f"The response from the remote server was:\n{d.format(a=a)}\n")
    if not st.startswith("5.1"):
        text = text.replace(" because the address couldn't be found, or is unable to receive mail", "")
    if RNG.random() < 0.5:
        return multipart_report("Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                                "Delivery Status Notification (Failure)", text, dsn_fields("mx.google.com", rcpts),
                                original(a))
    return plain("Mail Delivery Subsystem <mailer-daemon@googlemail.com>", "Delivery Status Notification (Failure)",
                 text + "\n----- Original message -----\n\n" + original(a))


def yahoo(rcpts: list[tuple[str, str, str]]) -> str:
    body = "Sorry, we were unable to deliver your message to the following address.\n\n"
    for a, _, d in rcpts:
        body += f"<{a}>:\n{d.format(a=a)}\n\n"
    body += "--- Below this line is a copy of the message.\n\n" + original(rcpts[0][0])
    return plain("MAILER-DAEMON@yahoo.com", "Failure Notice", body)


def courier(rcpts: list[tuple[str, str, str]]) -> str:
    text = ("This is a delivery status notification from mail.example.org,\nrunning the Courier mail server.\n\n"
            f"The original message was received on {date()}\nfrom relay.sender.example.org [203.0.113.9]\n\n"
            "---------------------------------------------------------------------------\n\n"
            "                           UNDELIVERABLE MAIL\n\nYour message to the following recipients cannot be "
            "delivered:\n\n")
    for a, _, d in rcpts:
        text += f"<{a}>:\n    mx.{a.split('@')[1]} [198.51.100.40]:\n>>> RCPT TO:<{a}>\n<<< {d.format(a=a)}\n\n"
    text += "---------------------------------------------------------------------------\n"
    return multipart_report("Courier mail server at mail.example.org <@>", "DELIVERY FAILURE: User unknown",
                            text, dsn_fields("mail.example.org", rcpts), original(rcpts[0][0]))


def opensmtpd(rcpts: list[tuple[str, str, str]]) -> str:
    text = ("Hi!\n\nThis is the MAILER-DAEMON, please DO NOT REPLY to this email.\n\nAn error has occurred while "
            "attempting to deliver a message for\nthe following list of recipients:\n\n")
    for a, _, d in rcpts:
        text += f"{a}: {d.format(a=a)}\n"
    text += "\nBelow is a copy of the original message:\n\n"
    return multipart_report("Mailer Daemon <MAILER-DAEMON@smtpd.example.org>", "Delivery status notification: error",
                            text, dsn_fields("smtpd.example.org", rcpts), original(rcpts[0][0]), headers_only=True)


def ses(rcpts: list[tuple[str, str, str]]) -> str:
    text = "An error occurred while trying to deliver the mail to the following recipients:\n" + "\n".join(
        a for a, _, _ in rcpts) + "\n"
    return multipart_report("MAILER-DAEMON@amazonses.com", "Delivery Status Notification (Failure)", text,
                            dsn_fields("a8-30.smtp-out.amazonses.com", rcpts), original(rcpts[0][0]))


def mdaemon(rcpts: list[tuple[str, str, str]]) -> str:
    body = "The attached message had PERMANENT fatal delivery errors!\n\nAfter one or more unsuccessful delivery attempts the attached message has been removed from the mail queue on this server. The number and frequency of delivery attempts are determined by local configuration parameters.\n\nYOUR MESSAGE WAS NOT DELIVERED TO ANY OF ITS RECIPIENTS!\n\n--- Session Transcript ---\n"
    for a, _, d in rcpts:
        body += f" Failed Recipient: {a}\n Reason: Remote host said: {d.format(a=a)}\n"
    body += "--- End Transcript ---\n\n--- Original message follows ---\n\n" + original(rcpts[0][0])
    return plain("MDaemon@mail.example.biz", "Permanent Delivery Failure", body)


def domino(rcpts: list[tuple[str, str, str]]) -> str:
    a, _, d = rcpts[0]
    body = (f"Your message\n\n  Subject: The November issue\n\nwas not delivered to:\n\n  {a}\n\nbecause:\n\n"
            f"  {d.format(a=a)}\n")
    return plain("Postmaster@notes.example.com", "DELIVERY FAILURE: User not listed in public Name & Address Book",
                 body + "\n----- Original message -----\n" + original(a, full=False))


# Mailbox providers of several countries: prose in their own language, the address inside
# a sentence, the SMTP reply after it, then a marked copy of the original.
# (From, Subject, the notice with {a} for the address and {d} for the reply, the mark)
LOCALISED = {
    "gmx": ("Mail Delivery System <mailer-daemon@gmx.net>", "Unzustellbar: The November issue",
            "Diese Nachricht wurde automatisch vom Mailsystem erzeugt.\n\nIhre Nachricht an {a} konnte nicht "
            "zugestellt werden.\nDer Empfänger-Server meldete:\n\n    {d}\n\n",
            "--- Kopie der ursprünglichen Nachricht ---\n\n"),
    "orange": ("MAILER-DAEMON@orange.example.fr", "Non remis : The November issue",
               "Votre message n'a pas pu être délivré au destinataire {a}.\n\nRaison : {d}\n\n"
               "Le message original est joint ci-dessous.\n\n", "-- Message original --\n"),
    "mailru": ("Mail Delivery System <mailer-daemon@corp.mail.example.ru>", "Недоставленное сообщение",
               "Не удалось доставить сообщение получателю {a}.\n\nОтвет сервера:\n{d}\n\n",
               "--- Ниже приведена копия исходного сообщения ---\n\n"),
    "libero": ("postmaster@libero.example.it", "Mancata consegna: The November issue",
               "Il messaggio per {a} non è stato consegnato.\n\nErrore del server remoto: {d}\n\n",
               "---- Messaggio originale ----\n"),
    "qq": ("PostMaster@qq.example.com", "退信：The November issue",
           "很抱歉您的邮件没能成功发送给 {a} 。\n\n原因：{d}\n\n", "----- 原始邮件 -----\n"),
    "uol": ("MAILER-DAEMON@uol.example.com.br", "Falha na entrega: The November issue",
            "Não foi possível entregar a sua mensagem para {a}.\n\nO servidor remoto respondeu: {d}\n\n",
            "--- Mensagem original ---\n"),
    "naver": ("MAILER-DAEMON@naver.example.com", "메일 전송 실패: The November issue",
              "{a} 님에게 보낸 메일이 전달되지 못했습니다.\n\n실패 사유: {d}\n\n", "----- 원본 메시지 -----\n"),
}


def localised(name: str) -> Callable[[list[tuple[str, str, str]]], str]:
    frm, subject, notice, mark = LOCALISED[name]

    def make(rcpts: list[tuple[str, str, str]]) -> str:
        a, _, d = rcpts[0]
        body = notice.replace("{a}", a).replace("{d}", d.format(a=a)) + mark + original(a, full=False)
        return plain(frm, subject, body)

    return make


FAMILIES = {
    "postfix": postfix, "exim": exim, "sendmail": sendmail, "qmail": qmail, "o365": exchange,
    "exchange2010": exchange2010, "gmail": gmail, "yahoo": yahoo, "courier": courier, "opensmtpd": opensmtpd,
    "ses": ses, "mdaemon": mdaemon, "domino": domino, **{name: localised(name) for name in LOCALISED},
}
MULTI = {"postfix", "exim", "sendmail", "qmail", "yahoo", "courier", "opensmtpd", "ses", "exchange2010"}


# ------------------------------------------------------------------ delays, complaints, replies


def delays(n: int) -> list[tuple[str, str, dict[str, object]]]:
    out = []
    for i in range(n):
        a = person()
        style = i % 6
        if style == 0:
            text = ("This is the mail system at host mx.example.net.\n\n####################################\n"
                    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
                    "####################################\n\nYour message could not be delivered for more than 4 "
                    "hour(s).\nIt will be retried until it is 5 day(s) old.\n\n"
                    f"<{a}>: connect to mx.{a.split('@')[1]}[198.51.100.9]:25: Connection timed out\n")
            dsn = f"Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; {a}\nAction: delayed\nStatus: 4.4.1\nDiagnostic-Code: X-Postfix; connect to mx: Connection timed out\n"
            raw = multipart_report("MAILER-DAEMON@mx.example.net (Mail Delivery System)",
                                   "Delayed Mail (still being retried)", text, dsn, original(a), headers_only=True)
        elif style == 1:
            body = ("This message was created automatically by mail delivery software.\nA message that you sent "
                    "has not yet been delivered to one or more of its\nrecipients after more than 24 hours on the "
                    "queue on relay.example.com.\n\nThe message identifier is:     1rXyZ4-0003Ab-Cd\n\nThe address "
                    f"to which the message has not yet been delivered is:\n\n  {a}\n    host mx.{a.split('@')[1]} "
                    "[198.51.100.21]\n    Delay reason: SMTP error from remote mail server after RCPT TO:\n"
                    "    451 4.7.1 Please try again later\n\nNo action is required on your part. Delivery attempts "
                    "will continue for\nsome time, and this warning may be repeated at intervals if the message\n"
                    "remains undelivered. Eventually the mail delivery software will give up,\nand when that "
                    "happens, the message will be returned to you.\n")
            raw = plain("Mail Delivery System <Mailer-Daemon@relay.example.com>", "Warning: message 1rXyZ4-0003Ab-Cd "
                        "delayed 24 hours", body, extra="X-Failed-Recipients: " + a + "\n" if False else "")
        elif style == 2:
            body = (f"The original message was received at {date()}\nfrom relay.sender.example.org [203.0.113.9]\n\n"
                    "   ----- Transcript of session follows -----\n"
                    f"<{a}>... Deferred: Connection timed out with mx.{a.split('@')[1]}.\n"
                    "Warning: message still undelivered after 4 hours\nWill keep trying until message is 5 days old\n")
            raw = plain("Mail Delivery Subsystem <MAILER-DAEMON@smtp.example.edu>",
                        "Warning: could not send message for past 4 hours", body)
        elif style == 3:
            body = (f"Delivery is delayed to these recipients or groups:\n\n{a}\n\nSubject: The November issue\n\n"
                    "This message hasn't been delivered yet. Delivery will continue to be attempted.\n\nThe server "
                    "will keep trying to deliver this message for the next 1 days, 19 hours and 52 minutes. You'll "
                    "be notified if the message can't be delivered by that time.\n")
            raw = plain("Microsoft Outlook <postmaster@outlook.example.com>",
                        "Delivery Delayed: The November issue", body)
        elif style == 4:
            body = (f"** Message not delivered yet **\n\nThere was a temporary problem delivering your message to "
                    f"{a}. Gmail will retry for 46 more hours. You'll be notified if the delivery fails "
                    "permanently.\n\nThe response from the remote server was:\n"
                    "421 4.7.0 Try again later, closing connection.\n")
            raw = plain("Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                        "Delivery Status Notification (Delay)", body)
        else:
            body = ("Hi. This is the qmail-send program at mail.example.com.\nI'm not going to try to deliver "
                    f"your message to the following address yet:\n\n<{a}>:\nConnected to 198.51.100.3 but "
                    "greeting failed.\nRemote host said: 421 too busy\nI'm not going to try again; this message "
                    "has been in the queue too long.\n")
            # qmail's warning wording; the message is still queued
            body = body.replace("I'm not going to try again; this message has been in the queue too long.",
                                "I'll keep trying until the message is 7 days old.")
            raw = plain("MAILER-DAEMON@mail.example.com", "delivery delayed", body)
        out.append((f"delay-{i:03d}", raw, {"kind": "delay", "recipients": [a], "verdict": None}))
    return out


def arf(feedback_type: str, frm: str, a: str, with_rcpt: bool) -> str:
    b = f"=_{RNG.getrandbits(48):x}"
    rcpt = f"Original-Rcpt-To: {a}\n" if with_rcpt else ""
    return (
        f"From: {frm}\nTo: fbl@sender.example.org\nSubject: Abuse report\nDate: {date()}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{b}"\n\n'
        f"--{b}\nContent-Type: text/plain\n\nThis is an email abuse report for an email message received from IP "
        f"203.0.113.9 on {date()}.\n\n--{b}\nContent-Type: message/feedback-report\n\nFeedback-Type: {feedback_type}\n"
        f"User-Agent: ExampleFBL/1.0\nVersion: 1\nOriginal-Mail-From: <{RETURN}>\n{rcpt}Arrival-Date: {date()}\n"
        f"Source-IP: 203.0.113.9\n\n--{b}\nContent-Type: message/rfc822\n\n{original(a)}\n--{b}--\n"
    )


def complaints(n: int) -> list[tuple[str, str, dict[str, object]]]:
    out = []
    providers = ["feedback@arf.mail.yahoo.example", "scomp@aol.example.net", "fbl@comcast.example.net",
                 "fbl@corp.mail.example.ru", "feedback@yandex.example.ru", "abuse@fastmail.example.com"]
    for i in range(n):
        a = person()
        if i % 4 == 3:
            # Microsoft's older (non-ARF) junk-mail reports: the original attached, the
            # recipient in the X-HmXmrOriginalRecipient header of the copy
            b = f"=_{RNG.getrandbits(48):x}"
            orig = original(a).replace(f"To: {a}\n", f"To: {a}\nX-HmXmrOriginalRecipient: <{a}>\n")
            raw = (f"From: staff@hotmail.example.com\nTo: fbl@sender.example.org\nSubject: complaint about message "
                   f"from 203.0.113.9\nDate: {date()}\nMIME-Version: 1.0\n"
                   f'Content-Type: multipart/mixed; boundary="{b}"\n\n--{b}\nContent-Type: text/plain\n\n'
                   "This is a junk mail report from the Junk Mail Reporting Program.\n\n"
                   f"--{b}\nContent-Type: message/rfc822\nContent-Disposition: inline\n\n{orig}\n--{b}--\n")
        else:
            raw = arf("abuse", providers[i % len(providers)], a, with_rcpt=i % 3 != 1)
        out.append((f"complaint-{i:03d}", raw, {"kind": "complaint", "recipients": [a], "verdict": None}))
    return out


def replies(n: int) -> list[tuple[str, str, dict[str, object]]]:
    subjects = ["Automatic reply: The November issue", "Out of Office: The November issue",
                "Abwesenheitsnotiz: The November issue", "Réponse automatique : The November issue",
                "Auto: The November issue", "Respuesta automática: The November issue"]
    out = []
    for i in range(n):
        a = person()
        extra = "Auto-Submitted: auto-replied\n" if i % 2 == 0 else "X-Autoreply: yes\n"
        raw = plain(f"{a.split('@')[0].title()} <{a}>", subjects[i % len(subjects)],
                    "I am out of the office until Monday with limited access to email. For urgent matters, "
                    "write to office@example.com.\n", extra=extra)
        out.append((f"reply-{i:03d}", raw, {"kind": "auto-reply", "recipients": [a], "verdict": None}))
    return out


def bounces() -> list[tuple[str, str, dict[str, object]]]:
    out = []
    verdicts = ["hard"] * 5 + ["soft"] * 3 + ["sender"] * 5
    for fam, make in FAMILIES.items():
        count = 14 if fam in MULTI else 8
        for i in range(count):
            verdict = verdicts[(i * 7 + len(fam)) % len(verdicts)]
            n = 2 if fam in MULTI and i % 5 == 4 else 1
            rcpts = []
            for _ in range(n):
                st, d = pick(verdict)
                rcpts.append((person(), st, d))
            raw = make(rcpts)
            out.append((f"{fam}-{i:03d}", raw, {"kind": "bounce", "recipients": [r[0] for r in rcpts],
                                                "verdict": verdict, "family": fam}))
    return out


def main() -> None:
    for old in OUT.glob("*.eml"):
        old.unlink()
    for old in OUT.glob("*.json"):
        old.unlink()
    cases = bounces() + delays(30) + complaints(24) + replies(12)
    for name, raw, expected in cases:
        (OUT / f"{name}.eml").write_bytes(raw.replace("\n", "\r\n").encode("utf-8"))
        (OUT / f"{name}.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n")
    print(f"{len(cases)} cases in {OUT}")


if __name__ == "__main__":
    main()
