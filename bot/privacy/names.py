"""Word lists for redaction's name and address rules.

"I'm Priya" is a name because of the capital; "im priya" (typed fast, all lowercase) is
only told apart from "im scared" by knowing that priya is a first name. Names that are
also everyday words after "I'm" or "it's" (may, will, hope, grace, sunny...) are left out
on purpose. The stronger cues ("my name is", sign-offs) need no list.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FIRST_NAMES = _words(
    """
    aaliyah aaron abbie abby abdi abdul abdullah abdulrahman abi abigail abimbola ada adaeze
    adam adebayo adele adeola adnan adrian adriana agata agnieszka ahmad ahmed aidan aileen
    aimee aisha aishah aisling alan alana alanna albert aleksandra alex alexa alexander
    alexandra alexis alfie ali alice alicia alina alisha alison aliyah alysha amal amanda
    amani amara amardeep amelia amelie amina amir amit amy ana anastasia andre andrea
    andreea andrei andrew andy aneesa angela angelina angus anika anil anita anna annabel
    anne annie anthony anton antonio anya aoife archie arjun arthur arun asha ashanti ashley
    ashok asif asma aston aurora ava ayaan ayesha ayla aylin ayo ayodele ayomide aziz
    babajide barbara barry bartosz basia beatrice becky bella ben benjamin bernard beth
    bethany bilal billie billy blessing bogdan bradley brandon brendan brian bridget bronwen
    bryony caitlin callum calum cameron camille candice cara carl carla carlos carly carmen
    carol caroline carys casey cassie catherine cathy cerys chanel chantelle charlie
    charlotte chelsea cherelle chiamaka chidi chike chinedu chioma chloe chris christian
    christina christine christopher ciara ciaran cieran claire clara colin connor conor
    corey courtney craig cristina cynthia dalia damian damilola dan dana daniel daniela
    danielle danny dara darius darren dave david dawid dawn dean debbie deborah declan deepa
    demi denise dennis derek destiny dev devon dexter dimitri dina dionne dominic donna
    dorota dylan ebony eddie edith edward eilidh eleanor elena eleni elif elijah elise eliza
    elizabeth ella ellie elliot ellis eloise elsie emeka emil emilia emily emma emre enrique
    eoin erin esra esther ethan eve evelyn ewa ezra fahad faisal farah fatima fatuma faye
    felix femi fern finley finn fiona florence folake francesca frank freddie freya funmi
    gabriel gabriela gareth gary gemma george georgia georgina gerard gethin gillian gina
    giovanni gloria gordon graham gurpreet gwen habib hafsa hamid hamza hana hannah harley
    harpreet harriet harrison harry harvey hassan hayden hayley hazel heather hector helen
    helena henry hina holly hussein ian ibrahim idris ifeoma ikechukwu ilona imani imogen
    imran ines iqra irene iris isaac isabel isabella isabelle isaiah isla ismail ivan izzy
    jack jackie jacob jade jake jamal james jamie jan jane janet janice jasmin jasmine jason
    jaspreet javier jay jayden jaz jean jenna jennifer jenny jeremy jerome jess jessica
    jessie jo joanna joanne jodie joe joel john johnny jon jonathan jordan jose joseph josh
    joshua joy joyce juan jude julia julian julie justin kacper kai kaitlyn kamal kamil
    karen karim karina karl kasia kate katherine kathleen kathryn katie katy kayla keeley
    keisha keith kelly kemi ken kenneth kerry kevin khadija khalid kieran kim kiran kirsty
    krystal krzysztof kuba kyle lara laura lauren layla leah lee leila lena leo leon leona
    lewis liam lily lina linda lisa lola lorna louis louise lucas lucia lucy luis luka
    lukasz luke lydia lynn maciej maddie madison magda magdalena mahmoud maisie maja malik
    manuel marc marcel marcin marcus marek margaret maria mariam marie marina mario marion
    marisa marius mark marta martha martin mary maryam mason matt matteo matthew maya megan
    mehmet mei melanie melissa mercy mia michael michaela michal michelle mihai mike milan
    millie ming mira miriam mohamed mohammad mohammed mohammod molly monica monika muhammad
    murat mustafa nadia naomi naseem natalia natalie natasha nathan nathaniel neha neil nia
    niamh nicholas nick nicola nicole nikita nikola nina nisha noah noor nora nuala obi
    oliver olivia olu oluwaseun omar oscar owen pablo paige pamela patricia patrick paul
    paula paulina pawel pedro peter petra philip phoebe piotr pooja poppy precious priya
    priyanka rachel rafael rahul raj rajesh ramona rana rani rashid ravi rebecca reece rhys
    ricardo richard rita rob robert roberto robyn rohan ronan rory rosa rosie ross rowan
    ruby rukhsana ruth ryan sabrina sadia safiya sahil saima sajid sally salma sam samantha
    samir samira sana sandeep sandra sanjay sara sarah sasha scott sean sebastian seren
    shabnam shakira shanice shannon sharon shaun shauna shazia shelby shirin shona shreya
    sian sienna simon simone siobhan sofia sonia sophia sophie stacey stefan stella
    stephanie stephen steve steven stuart sumaya sunita susan suzanne sylwia szymon tamara
    tanisha tanya tara tariq tasha tayo teresa terry theo thomas tia tiffany tim timothy
    tina tobi toby tom tomasz tommy toni tony tori tracey tyler tyrone umar usman valentina
    vanessa vicky victor victoria vikram viktor vinay violet vivek wayne wendy wiktoria
    william willow wojciech xavier yasmin yasmine yusuf yvonne zac zach zahra zainab zak
    zara zeynep zoe zofia zuzanna
    alfred winifred mildred ahmed mohammed muhammed hamed javed junaid naveed saeed zayed
    """
)

# Words that follow the cues but are not names: how people are ("I'm scared"), who they
# are ("I'm Muslim", "my ex partner"), when ("it's Monday"), sign-off filler ("thanks
# mate") and places or services ("this is Lewisham police").
NOT_NAMES = _words(
    """
    afraid african afternoon alone alright angry anonymous anxious anytime april asap
    ashamed asian asking atheist august aunt auntie autistic babe baby bad bangladeshi bank
    better bf bi bisexual black bleeding blind boss bot boyfriend british bro broke brother
    bruv bunch bye calling carer center centre chatbot cheers child childline chinese
    christian christmas colleague college concerned confidential confused cool council court
    cousin crying dad daughter dc deaf december depressed desperate detective disabled
    divorced dont easter eid emailing embarrassed english european evening ex exhausted fam
    father february fed feeling fine flatmate foreign friday friend frightened furious gay
    getting gf ghanaian girlfriend going good gp great guys heaps hiding hindu home homeless
    hospital housemate hubby hun hurt hurting husband idk ill im immigrant indian injured
    inspector interested irish irrelevant ive jamaican january jewish july june kid kids
    kurdish landlady landlord later law lesbian living loads lol lonely looking lost lots
    love manager march married mate messaging million mixed mom monday morning mother mum
    muslim nah neighbor neighbour nervous new nhs nigerian night nobody november nurse
    october office officer ok okay old omg pakistani pal panicking parent partner pc please
    pls plz police polish pregnant private queer ramadan refuge refugee reporting road
    romanian sad safe samaritans saturday scared school scottish secret separated september
    sergeant service services shaking sick sikh single sister somali son soon sorry station
    staying stepdad stepmum straight street stressed struggling stuck student sunday support
    sure survivor ta teacher team terrified texting thank thanks tho though thursday thx
    tired today tomorrow tonight trans trying tuesday turkish u uncle uni unimportant
    university unsafe unsure upset ur victim waiting waymark wednesday weekend welsh white
    wife witness wondering worried worse writing x xx xxx yeah yep yes yesterday young
    ra sir madam kindly muchly darling dear lovely
    suicidal emotional mental vulnerable petrified elderly unwell drunk high hungover
    year catholic protestant buddhist eritrean ethiopian sudanese syrian afghan iraqi iranian
    albanian lithuanian latvian bulgarian ukrainian russian portuguese brazilian spanish
    italian french german filipino vietnamese american caribbean arab roma traveller gypsy
    """
)

# "my ex Jason", "my ex-partner Jason": a name after these is someone else's.
RELATIONS = _words(
    """
    bf boss boyfriend brother cousin daughter ex friend gf girlfriend hubby husband landlord
    neighbor neighbour partner sister son stepdad stepmum wife mum mom dad mother father nan
    nana gran grandma grandad aunt auntie uncle niece nephew stepson stepdaughter colleague
    manager flatmate housemate carer
    """
)

# Words between a number and a street word that show it is no address ("3 times in the park").
NOT_STREET_WORDS = _words(
    """
    am boys cars children days girls guys hours hrs kids lads men metres miles mins minutes
    months officers people pm police pounds quid time times weeks women years
    """
)
