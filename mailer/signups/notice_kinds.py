"""The kinds of transactional message staff can reword: for each, who gets it and when, its
placeholders (Czech names, what each holds, a sample for the preview) and the default
wording, which is what the message says until staff change it and after „Obnovit výchozí
text“."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailer.compose.notice_texts import Wording
from mailer.settings import get_settings


@dataclass(frozen=True)
class NoticeKind:
    kind: str
    label: str
    recipient: str
    when: str
    # name -> (what it holds, a sample value for the preview)
    placeholders: dict[str, tuple[str, str]]
    default: Wording
    # What the preview shows in the message's fixed parts (the details table, the button).
    sample_details: list[tuple[str, str]] = field(default_factory=list)
    sample_path: str = "/"

    def all_placeholders(self) -> dict[str, tuple[str, str]]:
        """The kind's own placeholders and those every message has."""
        settings = get_settings()
        return {
            **self.placeholders,
            "odesilatel": ("název sdružení, které zprávu posílá", settings.sender_name),
            "web": ("adresa webu sdružení", settings.sender_web),
        }

    def samples(self) -> dict[str, str]:
        return {name: sample for name, (_, sample) in self.all_placeholders().items()}


def common_values() -> dict[str, str]:
    """The values of the placeholders every message has."""
    settings = get_settings()
    return {"odesilatel": settings.sender_name, "web": settings.sender_web}


_LIBRARY = ("název knihovny, jak ho žadatel napsal do přihlášky", "Městská knihovna Tišnov")
_CONTACT = ("jméno kontaktní osoby z přihlášky", "Marie Svobodová")
_EVENT = {
    "jmeno": ("jméno, které člověk napsal do registrace", "Jana Nováková"),
    "akce": ("název akce (a workshopu v cyklu)", "Knihovny současnosti 2027"),
    "datum": ("den konání", "14. září 2027"),
    "termin": ("den a čas konání", "úterý 14. září 2027, 9:30–17:00"),
    "misto": ("místo konání", "Krajská knihovna v Pardubicích"),
}
_APPLICATION_DETAILS = [
    ("Knihovna", "Městská knihovna Tišnov"),
    ("Typ", "městská knihovna"),
    ("Obec, kraj", "Tišnov, Jihomoravský kraj"),
    ("Kontaktní osoba", "Marie Svobodová, ředitelka"),
]
_SESSION_DETAILS = [
    ("Akce", "Knihovny současnosti 2027"),
    ("Kdy", "úterý 14. září 2027, 9:30–17:00"),
    ("Kde", "Krajská knihovna v Pardubicích, Pernštýnská 77, Pardubice"),
]
_EVENT_WHY = (
    "Tuto zprávu jste obdrželi, protože jste se na našem webu registrovali na akci "
    "{{ odesilatel }}. Další zprávy vám kvůli registraci pošleme jen k této akci."
)
_SUBSCRIBE_WHY = (
    "Tuto zprávu jste obdrželi, protože někdo zadal tuto adresu do formuláře odběru novinek "
    "na našem webu. Pokud jste to nebyli vy, zprávu ignorujte: bez potvrzení vám nic posílat "
    "nebudeme."
)
_APPLICANT_WHY = (
    "Tuto zprávu jste obdrželi, protože jste na našem webu odeslali přihlášku knihovny "
    "do {{ odesilatel }}."
)

KINDS: dict[str, NoticeKind] = {
    k.kind: k
    for k in (
        NoticeKind(
            kind="odber-potvrzeni",
            label="Potvrzení odběru novinek",
            recipient="zájemce o odběr",
            when="po odeslání formuláře odběru; odkaz v tlačítku platí 7 dní",
            placeholders={},
            default=Wording(
                subject="Potvrďte prosím odběr novinek {{ odesilatel }}",
                preheader="Jedno kliknutí a je hotovo. Odkaz platí 7 dní.",
                heading="Potvrďte prosím odběr",
                greeting="Dobrý den,",
                paragraphs=(
                    "děkujeme za zájem o novinky {{ odesilatel }}. Odběr začne platit, až ho "
                    "potvrdíte tlačítkem níže. Odkaz platí 7 dní.",
                ),
                button_label="Potvrdit odběr",
                why=_SUBSCRIBE_WHY,
            ),
            sample_path="/odber/potvrdit/ukazka",
        ),
        NoticeKind(
            kind="odber-vitejte",
            label="Přivítání nového odběratele",
            recipient="odběratel, který potvrdil odběr",
            when="po potvrzení odběru",
            placeholders={"jmeno": ("křestní jméno z formuláře (může chybět)", "Jana")},
            default=Wording(
                subject="Vítejte mezi odběrateli novinek {{ odesilatel }}",
                preheader="Odběr je potvrzený. Co od nás můžete čekat.",
                heading="Vítejte",
                greeting="Dobrý den,",
                paragraphs=(
                    "odběr je potvrzený. Budeme vám psát o tématech, která jste si vybrali: "
                    "o akcích a workshopech pro knihovny, o členství ve Sdružení a zpravodaj "
                    "s novinkami ze světa knihoven. Píšeme jen, když máme co říct.",
                    "Témata můžete kdykoli změnit nebo se odhlásit jedním kliknutím, odkaz je "
                    "v každé naší zprávě.",
                ),
                button_label="Nastavit témata odběru",
                why="Tuto zprávu jste obdrželi, protože jste potvrdili odběr novinek "
                "{{ odesilatel }} na našem webu.",
            ),
            sample_path="/p/ukazka",
        ),
        NoticeKind(
            kind="prihlaska-prijata",
            label="Přijetí přihlášky ke členství",
            recipient="žadatel (kontakt z přihlášky)",
            when="hned po odeslání přihlášky na webu",
            placeholders={"knihovna": _LIBRARY, "kontakt": _CONTACT},
            default=Wording(
                subject="Přijali jsme přihlášku vaší knihovny do {{ odesilatel }}",
                preheader="Děkujeme. Přihlášku posoudíme a ozveme se vám.",
                heading="Děkujeme za přihlášku",
                greeting="Dobrý den,",
                paragraphs=(
                    "přijali jsme přihlášku knihovny „{{ knihovna }}“ do {{ odesilatel }}. "
                    "Přihlášku nyní posoudíme a o výsledku vás budeme informovat e-mailem. "
                    "Fakturu na členský příspěvek pošleme po schválení.",
                    "Pro kontrolu, co jste nám poslali:",
                ),
                button_label="Web {{ odesilatel }}",
                after=(
                    "Pokud je v údajích chyba nebo máte otázku, stačí odpovědět na tento e-mail.",
                ),
                why=_APPLICANT_WHY + " Další zprávy vám kvůli ní posílat nebudeme, kromě výsledku.",
            ),
            sample_details=_APPLICATION_DETAILS,
        ),
        NoticeKind(
            kind="prihlaska-pro-sdruk",
            label="Oznámení o nové přihlášce pro pracovníky",
            recipient="pracovníci sdružení (adresa pro oznámení o přihláškách)",
            when="hned po odeslání přihlášky na webu",
            placeholders={
                "knihovna": _LIBRARY,
                "obec": ("obec knihovny z přihlášky", "Tišnov"),
                "kraj": ("kraj knihovny z přihlášky", "Jihomoravský kraj"),
            },
            default=Wording(
                subject="Nová přihláška do SDRUK: {{ knihovna }}",
                preheader="Přihláška čeká na schválení v konzoli.",
                heading="Nová přihláška ke členství",
                greeting="Dobrý den,",
                paragraphs=(
                    "knihovna „{{ knihovna }}“ odeslala přihlášku ke členství. "
                    "Přihláška čeká na schválení nebo zamítnutí v konzoli.",
                ),
                button_label="Otevřít přihlášku v konzoli",
                why="Tuto zprávu dostáváte jako pracovník {{ odesilatel }}, na jehož adresu "
                "chodí oznámení o nových přihláškách.",
            ),
            sample_details=_APPLICATION_DETAILS,
            sample_path="/console/applications/1",
        ),
        NoticeKind(
            kind="clenstvi-schvaleno",
            label="Schválení přihlášky ke členství",
            recipient="žadatel (kontakt z přihlášky)",
            when="když pracovník v konzoli přihlášku schválí",
            placeholders={"knihovna": _LIBRARY, "kontakt": _CONTACT},
            default=Wording(
                subject="Přihláška knihovny do {{ odesilatel }} je schválena",
                preheader="Knihovna „{{ knihovna }}“ je členem. Co bude dál.",
                heading="Vítejte mezi členy",
                greeting="Dobrý den,",
                paragraphs=(
                    "s radostí vám oznamujeme, že jsme schválili přihlášku knihovny "
                    "„{{ knihovna }}“. Od dnešního dne je členem {{ odesilatel }}.",
                    "Co bude dál: v nejbližších dnech vám pošleme fakturu na členský "
                    "příspěvek na fakturační údaje z přihlášky. Členství platí po celý "
                    "kalendářní rok a budeme vás zvát na akce a workshopy pro členy.",
                ),
                button_label="Web {{ odesilatel }}",
                after=("Máte-li otázku, stačí odpovědět na tento e-mail.",),
                why=_APPLICANT_WHY,
            ),
        ),
        NoticeKind(
            kind="clenstvi-zamitnuto",
            label="Zamítnutí přihlášky ke členství",
            recipient="žadatel (kontakt z přihlášky)",
            when="když pracovník v konzoli přihlášku zamítne",
            placeholders={
                "knihovna": _LIBRARY,
                "kontakt": _CONTACT,
                "zduvodneni": (
                    "poznámka pracovníka k rozhodnutí, jen když zaškrtl „Poslat zdůvodnění "
                    "žadateli“; jinak prázdné",
                    "Knihovna už je členem prostřednictvím svého zřizovatele.",
                ),
            },
            default=Wording(
                subject="Přihláška knihovny do {{ odesilatel }}",
                preheader="Výsledek posouzení přihlášky knihovny „{{ knihovna }}“.",
                heading="Výsledek posouzení přihlášky",
                greeting="Dobrý den,",
                paragraphs=(
                    "děkujeme za zájem o členství. Přihlášku knihovny „{{ knihovna }}“ jsme "
                    "posoudili a tentokrát ji bohužel nemůžeme přijmout.",
                    "{% if zduvodneni %}Zdůvodnění: {{ zduvodneni }}{% endif %}",
                    "Pokud se situace změní, budeme rádi, když se přihlásíte znovu.",
                ),
                button_label="Web {{ odesilatel }}",
                after=("Máte-li otázku, stačí odpovědět na tento e-mail.",),
                why=_APPLICANT_WHY,
            ),
        ),
        NoticeKind(
            kind="registrace-potvrzena",
            label="Potvrzení registrace na akci",
            recipient="registrovaný účastník",
            when="po registraci na akci, na kterou je volné místo (s pozvánkou do kalendáře)",
            placeholders=_EVENT,
            default=Wording(
                subject="Registrace potvrzena: {{ akce }}",
                preheader="{{ datum }}, {{ misto }}",
                heading="Jste registrováni",
                greeting="Dobrý den, {{ jmeno }},",
                paragraphs=(
                    "děkujeme za registraci. Místo na akci „{{ akce }}“ máte zajištěné. "
                    "Termín si uložíte do kalendáře z přílohy.",
                ),
                button_label="Zrušit registraci",
                after=(
                    "Pokud nakonec nemůžete přijít, zrušte prosím registraci tlačítkem výše: "
                    "místo připadne dalšímu zájemci z čekací listiny.",
                    "Dva dny před akcí vám pošleme praktické informace.",
                ),
                why=_EVENT_WHY,
            ),
            sample_details=_SESSION_DETAILS,
            sample_path="/zrusit-registraci/ukazka",
        ),
        NoticeKind(
            kind="registrace-cekaci-listina",
            label="Zápis na čekací listinu akce",
            recipient="zájemce o plně obsazenou akci",
            when="po registraci na akci bez volného místa",
            placeholders=_EVENT,
            default=Wording(
                subject="Čekací listina: {{ akce }}",
                preheader="Jakmile se uvolní místo, dáme vám vědět.",
                heading="Jste na čekací listině",
                greeting="Dobrý den, {{ jmeno }},",
                paragraphs=(
                    "akce „{{ akce }}“ je zatím plně obsazená, proto jsme vás zapsali na "
                    "čekací listinu. Jakmile se uvolní místo, automaticky vám ho přidělíme a "
                    "pošleme potvrzení.",
                ),
                button_label="Odhlásit se z čekací listiny",
                why=_EVENT_WHY,
            ),
            sample_details=_SESSION_DETAILS,
            sample_path="/zrusit-registraci/ukazka",
        ),
        NoticeKind(
            kind="registrace-uvolnene-misto",
            label="Uvolněné místo z čekací listiny",
            recipient="první na čekací listině",
            when="když se na akci uvolní místo (s pozvánkou do kalendáře)",
            placeholders=_EVENT,
            default=Wording(
                subject="Uvolnilo se místo: {{ akce }}",
                preheader="Místo na akci je vaše.",
                heading="Uvolnilo se místo, je vaše",
                greeting="Dobrý den, {{ jmeno }},",
                paragraphs=(
                    "na akci „{{ akce }}“ se uvolnilo místo a podle pořadí na čekací listině "
                    "připadlo vám. Registrace je potvrzená, termín si uložíte do kalendáře "
                    "z přílohy.",
                ),
                button_label="Zrušit registraci",
                after=(
                    "Pokud už přijít nemůžete, zrušte prosím registraci, ať místo dostane další.",
                ),
                why=_EVENT_WHY,
            ),
            sample_details=_SESSION_DETAILS,
            sample_path="/zrusit-registraci/ukazka",
        ),
    )
}
